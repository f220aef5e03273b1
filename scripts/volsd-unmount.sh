#!/usr/bin/env bash
# Volsd-Unmount: unmounts a volume wherever it is mounted on this host, so it can be detached.
#
# Environment:
#   VOLSD_VOLUME_ID           the volume (vol-...)                                  required
#   VOLSD_BUSY_WAIT_SECONDS   how long a busy filesystem is retried (0-300)         default 5
#   VOLSD_ROOT                prefix of every host path (empty on a real host)
#
# Thaws the filesystem first if Volsd-Freeze left it frozen, flushes it (sync), unmounts every mount
# of the volume's device (a busy target is retried for a bounded time, never forced: a lazy unmount
# followed by a detach would lose writes) and removes /etc/volsd/mounts.d/<volumeId>. Idempotent: a
# volume that is not mounted, or not even attached, is a success. A volume that vanished while
# mounted (forced detach) leaves a mount of a missing device: that one is unmounted lazily.
# Last line: VOLSD_RESULT {"op":"unmount","volumeId","device","mountPaths":[...],"status"} with status
# unmounted | not-mounted. Exit codes: 7 when the filesystem stays busy; others in volsd-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=volsd-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/volsd-lib.sh" # volsd:include

volsd_init unmount
volume=${VOLSD_VOLUME_ID:-}
busy_wait=${VOLSD_BUSY_WAIT_SECONDS:-5}
volsd_check_volume_id "$volume"
volsd_check VOLSD_BUSY_WAIT_SECONDS "$busy_wait" "$VOLSD_RE_SECONDS"
volsd_require_tools umount lsblk fsfreeze sync flock awk readlink

volsd_lock "$volume" 120
device=$(volsd_find_device "$volume") || device=''
mount_paths=()
lazy=false
if [[ -n $device ]]; then
  mapfile -t mount_paths < <(volsd_mounts_of "$device")
else
  record=$(volsd_record_path "$volume")
  recorded=""
  if [[ -f $record ]]; then
    read -r recorded <"$record" || true
    source_dev=$(volsd_source_at "${recorded:-}")
    if [[ -n ${recorded:-} && -n $source_dev && ! -e $R$source_dev ]]; then
      volsd_log "$volume is gone but $recorded still shows $source_dev: lazy unmount"
      mount_paths=("$recorded")
      lazy=true
    fi
  fi
fi

# Unmount the most recent mount first, so stacked mounts come off in order.
unmounted=()
for ((i = ${#mount_paths[@]} - 1; i >= 0; i--)); do
  mnt=${mount_paths[i]}
  if [[ -f $(volsd_frozen_state "$volume") ]] && ! volsd_thaw "$volume" "$mnt"; then
    volsd_fail "$VOLSD_EXIT_UNMOUNT_FAILED" unmount-failed "cannot thaw $mnt before unmounting: $VOLSD_THAW_ERROR"
  fi
  sync -f -- "$R$mnt" 2>/dev/null || sync
  tries=$((busy_wait * 2 + 1))
  while :; do
    if $lazy; then
      out=$(umount -l -- "$R$mnt" 2>&1) && break
    else
      out=$(umount -- "$R$mnt" 2>&1) && break
    fi
    # Gone in the meantime (a concurrent unmount): fine.
    [[ -n $(volsd_source_at "$mnt") ]] || break
    if ((--tries == 0)); then
      volsd_fail "$VOLSD_EXIT_UNMOUNT_FAILED" unmount-failed "umount $mnt failed: $out" \
        device "$(volsd_json_opt "$device")" mountPath "$(volsd_json_str "$mnt")"
    fi
    sleep 0.5
  done
  unmounted+=("$(volsd_json_str "$mnt")")
  volsd_log "unmounted $mnt"
done
volsd_forget "$volume"

status=not-mounted
((${#unmounted[@]} == 0)) || status=unmounted
joined=$(IFS=,; printf '%s' "${unmounted[*]}")
volsd_result op '"unmount"' volumeId "$(volsd_json_str "$volume")" device "$(volsd_json_opt "$device")" \
  mountPaths "[$joined]" status "\"$status\""
