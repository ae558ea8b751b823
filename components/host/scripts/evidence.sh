#!/bin/bash
# evidence.sh [--months N]: this host's backup evidence for an auditor, as Markdown on stdout, read
# from the history every job run appends to (<history>/<YYYY-MM>.tsv, common.sh): each drill and
# restore with its result and measured restore time, each job's success rate, each alert and
# whether it was delivered. N is 1 to 12 (default 12). Run by hand through b321-evidence, which
# says where the history is (B321_HISTORY_DIR). Reads only; needs no root.
set -Eeuo pipefail

usage() {
  echo "usage: ${0##*/} [--months N]   (N from 1 to 12, default 12)" >&2
  exit 2
}

main() {
  local months=12 dir=${B321_HISTORY_DIR:-} since now first f name files=()
  while [ $# -gt 0 ]; do
    case $1 in
      --months) [ $# -ge 2 ] || usage; months=$2; shift 2 ;;
      --months=*) months=${1#--months=}; shift ;;
      -h | --help) usage ;;
      *) echo "${0##*/}: unknown argument $1" >&2; usage ;;
    esac
  done
  [[ $months =~ ^([1-9]|1[0-2])$ ]] || usage
  [ -n "$dir" ] || { echo "${0##*/}: B321_HISTORY_DIR is not set (run b321-evidence)" >&2; exit 2; }
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  since=$(date -u -d "$now -$months months" +%Y-%m-%dT%H:%M:%SZ)
  first=${since:0:7}
  for f in "$dir"/[0-9][0-9][0-9][0-9]-[0-9][0-9].tsv; do
    [ -f "$f" ] || continue
    name=${f##*/}
    [[ ${name%.tsv} < $first ]] || files+=("$f")
  done
  { [ ${#files[@]} -eq 0 ] || cat -- "${files[@]}"; } | LC_ALL=C sort -t $'\t' -k1,1 -s |
    render "$(hostname)" "$since" "$now" "$dir"
}

# render HOST SINCE NOW DIR: the report, from history lines (sorted by end time) on stdin.
render() {
  awk -F'\t' -v host="$1" -v since="$2" -v now="$3" -v dir="$4" '
    function cell(s) { gsub(/\|/, "\\|", s); gsub(/ \\n /, "; ", s); return s }
    function rate(good, runs) { return runs ? sprintf("%.1f %%", 100 * good / runs) : "-" }
    # table HEAD ROWS COUNT: a Markdown table of ROWS[1..COUNT] under HEAD, or a line saying none.
    function table(head, rows, count, i, sep) {
      if (!count) { print "None in this period."; return }
      sep = head; gsub(/[^|]+/, "---", sep)
      print head; print sep
      for (i = 1; i <= count; i++) print rows[i]
    }
    NF < 10 || $1 < since { next }
    {
      runs++
      if (!oldest) oldest = $1
      job = $3
      if (!(job in n)) order[++jobs] = job
      kind[job] = $4; n[job]++; last[job] = $1; lastres[job] = $5
      if ($5 == "success") ok[job]++
      else if ($5 == "warning") warned[job]++
      else failed[job]++
      if ($5 != "failed") lastok[job] = $1
      if ($4 == "drill" || $4 == "restore")
        drills[++nd] = sprintf("| %s | %s | %s | %s | %s | %s |", $1, job, $4, $5,
          $7 == "" ? "-" : $7 " s", cell($10))
      if ($5 != "success")
        alerts[++na] = sprintf("| %s | %s | %s | %s | %s |", $1, job, $5, $9, cell($10))
    }
    END {
      printf "# Backup evidence: %s\n\n", host
      printf "From %s to %s (UTC): %d runs recorded in %s.\n", since, now, runs, dir
      if (!runs) print "\nNo run is recorded in this period: no job ran on this host, or its history was lost."
      else if (oldest > since)
        printf "\nThe history starts at %s: nothing earlier is recorded on this host (a rebuilt host, or a history kept since then only).\n", oldest
      print "\n## Drills and restores\n"
      table("| Ended (UTC) | Job | Kind | Result | Measured restore time | Note |", drills, nd)
      print "\n## Success rate per job\n"
      print "The success rate counts the runs that did their job: succeeded, or warned.\n"
      for (i = 1; i <= jobs; i++) {
        j = order[i]
        rates[i] = sprintf("| %s | %s | %d | %d | %d | %d | %s | %s | %s | %s |", j, kind[j], n[j],
          ok[j], warned[j], failed[j], rate(ok[j] + warned[j], n[j]), last[j], lastres[j],
          (j in lastok) ? lastok[j] : "never")
      }
      table("| Job | Kind | Runs | Succeeded | Warned | Failed | Success rate | Last run | Last result | Last success |", rates, jobs)
      print "\n## Alerts\n"
      print "Every run that failed or warned raised an alert; Delivered says whether a channel took it."
      print ""
      table("| Ended (UTC) | Job | Result | Delivered | Message |", alerts, na)
    }'
}

main "$@"
