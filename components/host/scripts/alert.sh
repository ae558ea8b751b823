#!/bin/bash
# alert.sh JOB RESULT MESSAGE: raises an alert on every channel configured in <etc>/alert.env.
# Called by common.sh when a job fails or warns, and by the monitor. Never prints a secret: the
# webhook URL is read from a 0600 file and handed to curl on stdin (-K -), not on its command line.
set -Eeuo pipefail

main() {
  local job=$1 result=$2 message=$3 conf host subject sent=0
  conf=${B321_ALERT_ENV:-${B321_ETC:-/etc/backup321}/alert.env}
  host=$(hostname)
  subject="[backup321] $result: $job on $host"
  logger -t backup321 -p user.err -- "ALERT $subject: $message" || true
  if [ -r "$conf" ]; then
    # shellcheck source=/dev/null
    source "$conf"
  fi
  if [ -n "${ALERT_EMAIL:-}" ] && command -v sendmail >/dev/null 2>&1; then
    printf 'To: %s\nSubject: %s\n\n%s\n' "$ALERT_EMAIL" "$subject" "$message" |
      sendmail -t && sent=1
  fi
  if [ -n "${ALERT_WEBHOOK_FILE:-}" ] && [ -r "$ALERT_WEBHOOK_FILE" ]; then
    post_webhook "$ALERT_WEBHOOK_FILE" "$job" "$result" "$host" "$message" && sent=1
  fi
  [ "$sent" = 1 ] || [ -z "${ALERT_EMAIL:-}${ALERT_WEBHOOK_FILE:-}" ]
}

json() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

post_webhook() {
  local url_file=$1 job=$2 result=$3 host=$4 message=$5 body
  body=$(printf '{"job":%s,"result":%s,"host":%s,"message":%s}' \
    "$(json "$job")" "$(json "$result")" "$(json "$host")" "$(json "$message")")
  # The URL is the credential (ntfy topic, Healthchecks uuid): it goes to curl through a config on stdin.
  { printf 'url = "%s"\n' "$(head -n 1 -- "$url_file")"; } |
    curl -fsS --max-time 20 --retry 3 -K - -H 'Content-Type: application/json' \
      -H "Title: backup321 $result: $job on $host" --data-binary "$body" -o /dev/null
}

main "$@"
