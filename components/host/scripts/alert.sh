#!/bin/bash
# alert.sh JOB RESULT MESSAGE: raises an alert on every channel configured in <etc>/alert.env.
# Called by common.sh when a job fails or warns, and by the monitor, which also calls it with the
# RESULT success after a run that found nothing wrong: that is a ping for a dead-man's switch
# (webhook only, when ALERT_PING_ON_SUCCESS=1), not an alert.
# alert.env: ALERT_CONTACTS (who to call: the mail's last line, the webhook body's "contacts"),
# ALERT_EMAIL (addresses, comma-separated), ALERT_WEBHOOK_FILE (0600 file holding the URL),
# ALERT_WEBHOOK_STYLE (json: POST the JSON body to the URL; healthchecks: alerts go to <URL>/fail,
# pings to <URL>), ALERT_PING_ON_SUCCESS (1 or 0).
# Never prints a secret: the webhook URL is read from its file and handed to curl on stdin (-K -),
# not on its command line. Exits non-zero when a configured channel could not be reached.
set -Eeuo pipefail
# shellcheck source=common.sh
source "${BASH_SOURCE[0]%/*}/common.sh"

main() {
  local job=$1 result=$2 message=$3 conf host subject failed=0
  conf=${B321_ALERT_ENV:-${B321_ETC:?B321_ETC or B321_ALERT_ENV must say where alert.env is}/alert.env}
  host=$(hostname)
  if [ -r "$conf" ]; then
    # shellcheck source=/dev/null
    source "$conf"
  fi
  if [ "$result" = success ]; then
    logger -t backup321 -p user.info -- "[$job] ok: $message" || true
    if [ "${ALERT_PING_ON_SUCCESS:-0}" = 1 ] && [ -n "${ALERT_WEBHOOK_FILE:-}" ]; then
      post_webhook "$ALERT_WEBHOOK_FILE" "$job" "$result" "$host" "$message" "" || failed=1
    fi
    return "$failed"
  fi
  subject="[backup321] $result: $job on $host"
  logger -t backup321 -p user.err -- "ALERT $subject: $message" || true
  if [ -n "${ALERT_EMAIL:-}" ]; then
    send_mail "$ALERT_EMAIL" "$subject" "$message${ALERT_CONTACTS:+$'\n\n'Who to call: $ALERT_CONTACTS}" || failed=1
  fi
  if [ -n "${ALERT_WEBHOOK_FILE:-}" ]; then
    local suffix=""
    [ "${ALERT_WEBHOOK_STYLE:-json}" != healthchecks ] || suffix=/fail
    post_webhook "$ALERT_WEBHOOK_FILE" "$job" "$result" "$host" "$message" "$suffix" || failed=1
  fi
  return "$failed"
}

send_mail() {
  local to=$1 subject=$2 message=$3
  if ! command -v sendmail >/dev/null 2>&1; then
    logger -t backup321 -p user.err -- "cannot mail $to: no sendmail (install a mail transfer agent)" || true
    return 1
  fi
  printf 'To: %s\nSubject: %s\nContent-Type: text/plain; charset=UTF-8\n\n%s\n' \
    "$to" "$subject" "$message" | sendmail -t
}

json() {
  printf '"%s"' "$(b321_json_escape "$1")"
}

post_webhook() {
  local url_file=$1 job=$2 result=$3 host=$4 message=$5 suffix=$6 body url
  if [ ! -r "$url_file" ]; then
    logger -t backup321 -p user.err -- "cannot read the webhook URL file $url_file" || true
    return 1
  fi
  url=$(head -n 1 -- "$url_file")
  url=${url%/}$suffix
  body=$(printf '{"job":%s,"result":%s,"host":%s,"message":%s,"contacts":%s}' \
    "$(json "$job")" "$(json "$result")" "$(json "$host")" "$(json "$message")" \
    "$(json "${ALERT_CONTACTS:-}")")
  # The URL is the credential (ntfy topic, Healthchecks uuid): it goes to curl through a config on
  # stdin, so it is neither in ps nor in the environment.
  printf 'url = "%s"\n' "$url" |
    curl -fsS --max-time 20 --retry 3 -K - -H 'Content-Type: application/json' \
      -H "Title: backup321 $result: $job on $host" --data-binary "$body" -o /dev/null
}

main "$@"
