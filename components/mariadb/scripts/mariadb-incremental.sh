#!/bin/bash
# Incremental backup of MariaDB: mariadb-full.sh at the increment level (the pages changed since
# the newest physical full; see there), run on its own schedule with its own status.
MARIADB_BACKUP_LEVEL=incremental exec "${BASH_SOURCE[0]%/*}/mariadb-full.sh" "$@"
