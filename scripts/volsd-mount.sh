#!/usr/bin/env bash
# Volsd-Mount: mounts an attached EBS volume at a path, found by its NVMe serial.
#
# Environment:
#   VOLSD_VOLUME_ID             the volume (vol-...)                                   required
#   VOLSD_MOUNT_PATH            where to mount it (absolute, plain characters)          required
#   VOLSD_MOUNT_OPTIONS         mount options (nosuid,nodev are always added)          default noatime
#   VOLSD_MOUNT_ROOTS           space-separated roots the mount path must lie under     default: any
#   VOLSD_DEVICE_WAIT_SECONDS   how long to wait for the device to appear after attach (0-300) default 60
#   VOLSD_ROOT                  prefix of every host path (empty on a real host)
#
# The mount path is resolved on the host (every symlink, realpath -m) and refused with exit 15 when it
# leads into a system tree (/etc, /usr, ... by prefix; see volsd-lib.sh) or outside VOLSD_MOUNT_ROOTS.
# Waits (bounded) for the device whose by-id name or NVMe serial names the volume, checks its serial,
# mounts it (XFS gets `nouuid`, see volsd-lib.sh) and records it in /etc/volsd/mounts.d/<volumeId> so
# Volsd-Sync finds it. Idempotent: the volume already mounted at the path is a success. Refuses a path
# that holds another device and a volume that is mounted elsewhere (exit 5). An unformatted volume
# fails to mount (exit 6): Volsd-Format is the script for empty volumes.
# Last line: VOLSD_RESULT {"op":"mount","volumeId","device","mountPath","generation","status"}
# with status mounted | already-mounted, generation from <mount>/.volsd/generation (0 if absent).
# First, before anything else, it checks the instance requirements (volsd_require_tools): the AWS CLI v2
# too, which this script does not run but Volsd-Sync runs at every push, so that the first acquire on
# a host that lacks something fails naming all of it (exit 16, or 12 when only commands are missing).
# Exit codes: see volsd-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=volsd-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/volsd-lib.sh" # volsd:include

volsd_init mount
volsd_require_tools mount lsblk blkid flock awk readlink realpath aws
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
volsd_mount_volume "$volume" "$device" "$mount_path" "$options"
generation=$(volsd_read_generation "$mount_path")
volsd_log "$device $VOLSD_MOUNT_STATE at $mount_path (generation $generation)"
volsd_result op '"mount"' volumeId "$(volsd_json_str "$volume")" device "$(volsd_json_str "$device")" \
  mountPath "$(volsd_json_str "$mount_path")" generation "$generation" status "$(volsd_json_str "$VOLSD_MOUNT_STATE")"
