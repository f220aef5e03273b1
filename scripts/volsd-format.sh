#!/usr/bin/env bash
# Volsd-Format: gives a fresh, empty volume an XFS filesystem (label volsd), then mounts it like
# Volsd-Mount. Used by the sync worker for volumes created without a snapshot.
#
# Environment: as Volsd-Mount (VOLSD_VOLUME_ID, VOLSD_MOUNT_PATH, VOLSD_MOUNT_OPTIONS,
# VOLSD_DEVICE_WAIT_SECONDS, VOLSD_ROOT).
#
# Never formats a device that is mounted or that carries any filesystem signature (blkid): a volume
# that already has a filesystem is only mounted, so a retry after a crash between mkfs and mount is
# harmless. Last line: VOLSD_RESULT {"op":"format","volumeId","device","mountPath","generation",
# "formatted":true|false,"status"}. Exit codes: see volsd-lib.sh (13 when mkfs fails).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=volsd-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/volsd-lib.sh" # volsd:include

volsd_init format
volsd_require_tools mount lsblk blkid mkfs.xfs flock awk readlink realpath
volume=${VOLSD_VOLUME_ID:-}
mount_path=${VOLSD_MOUNT_PATH:-}
options=${VOLSD_MOUNT_OPTIONS-noatime}
wait_seconds=${VOLSD_DEVICE_WAIT_SECONDS:-60}
volsd_check_volume_id "$volume"
volsd_check_mount_path "$mount_path" "${VOLSD_MOUNT_ROOTS:-}"
volsd_check VOLSD_MOUNT_OPTIONS "$options" "$VOLSD_RE_MOUNT_OPTIONS"
volsd_check VOLSD_DEVICE_WAIT_SECONDS "$wait_seconds" "$VOLSD_RE_SECONDS"

volsd_lock "$volume" 120
volsd_device_or_fail "$volume" "$wait_seconds"
device=$VOLSD_DEVICE
formatted=false
mapfile -t mounted_at < <(volsd_mounts_of "$device")
if ((${#mounted_at[@]} == 0)); then
  # blkid: 0 = a signature was found, 2 = none; anything else is an error we must not format over.
  rc=0
  fstype=$(blkid -o value -s TYPE -- "$R$device" 2>&1) || rc=$?
  if ((rc == 2)); then
    volsd_log "$device has no filesystem: mkfs.xfs"
    if ! out=$(mkfs.xfs -q -L volsd -- "$R$device" 2>&1); then
      volsd_fail "$VOLSD_EXIT_FORMAT_FAILED" format-failed "mkfs.xfs $device failed: $out" device "$(volsd_json_str "$device")"
    fi
    formatted=true
  elif ((rc != 0)); then
    volsd_fail "$VOLSD_EXIT_FORMAT_FAILED" format-failed "blkid $device failed (exit $rc): $fstype" device "$(volsd_json_str "$device")"
  else
    volsd_log "$device already holds a $fstype filesystem: not formatting"
  fi
fi
volsd_mount_volume "$volume" "$device" "$mount_path" "$options"
generation=$(volsd_read_generation "$mount_path")
volsd_log "$device $VOLSD_MOUNT_STATE at $mount_path (formatted: $formatted)"
volsd_result op '"format"' volumeId "$(volsd_json_str "$volume")" device "$(volsd_json_str "$device")" \
  mountPath "$(volsd_json_str "$mount_path")" generation "$generation" formatted "$formatted" \
  status "$(volsd_json_str "$VOLSD_MOUNT_STATE")"
