#!/usr/bin/env bash
# Volsd-Freeze: freezes (or thaws) the filesystem of a mounted volume, so an EBS snapshot taken in
# between is consistent.
#
# Environment:
#   VOLSD_VOLUME_ID        the volume (vol-...)                                       required
#   VOLSD_FREEZE           freeze | thaw                                              required
#   VOLSD_FREEZE_SECONDS   the freeze's bound: a watchdog thaws it after this many     default 30
#                          seconds if no thaw comes (1-900)
#   VOLSD_ROOT             prefix of every host path (empty on a real host)
#
# A frozen filesystem blocks every writer, so a freeze must never outlive a lost workflow: each freeze
# starts a detached watchdog (its own session, stdio closed, so the SSM command still ends) that thaws
# after VOLSD_FREEZE_SECONDS; thaw stops it. Idempotent: freezing a frozen filesystem re-arms the
# bound, thawing a thawed one succeeds. The snapshot only needs the freeze until CreateSnapshot
# returns (EBS takes the point in time then), so a short bound is safe.
# Last line: VOLSD_RESULT {"op":"freeze","volumeId","mountPath","mode","frozen","changed","autoThawSeconds"}.
# Exit codes: 14 when the volume is not mounted, 10 when fsfreeze fails; others in volsd-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=volsd-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/volsd-lib.sh" # volsd:include

volsd_init freeze
volume=${VOLSD_VOLUME_ID:-}
mode=${VOLSD_FREEZE:-}
bound=${VOLSD_FREEZE_SECONDS:-30}
volsd_check_volume_id "$volume"
volsd_check VOLSD_FREEZE "$mode" '^(freeze|thaw)$'
volsd_check VOLSD_FREEZE_SECONDS "$bound" '^([1-9]|[1-9][0-9]|[1-8][0-9]{2}|900)$'
volsd_require_tools fsfreeze setsid flock awk readlink lsblk

volsd_lock "$volume" 60
device=$(volsd_find_device "$volume") || device=''
mount_path=''
if [[ -n $device ]]; then
  mount_path=$(volsd_mounts_of "$device" | awk 'NR == 1')
fi
[[ -n $mount_path ]] || volsd_fail "$VOLSD_EXIT_NOT_MOUNTED" not-mounted "$volume is not mounted on this host"
state=$(volsd_frozen_state "$volume")

if [[ $mode == thaw ]]; then
  volsd_thaw "$volume" "$mount_path" ||
    volsd_fail "$VOLSD_EXIT_FREEZE_FAILED" freeze-failed "fsfreeze -u $mount_path failed: $VOLSD_THAW_ERROR"
  volsd_log "thawed $mount_path (was frozen: $VOLSD_THAWED)"
  volsd_result op '"freeze"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mount_path")" \
    mode '"thaw"' frozen false changed "$VOLSD_THAWED"
  exit 0
fi

changed=true
if ! out=$(fsfreeze -f -- "$R$mount_path" 2>&1); then
  [[ $out == *"Device or resource busy"* ]] ||
    volsd_fail "$VOLSD_EXIT_FREEZE_FAILED" freeze-failed "fsfreeze -f $mount_path failed: $out"
  changed=false
fi
# (Re-)arm the bound: the previous watchdog, if any, gives way to a fresh one.
volsd_stop_watchdog "$volume"
mkdir -p "${state%/*}"
# shellcheck disable=SC2016 # expanded by the watchdog's own shell
setsid bash -c 'sleep "$1"; fsfreeze -u -- "$2" >/dev/null 2>&1; rm -f -- "$3"' volsd-autothaw \
  "$bound" "$R$mount_path" "$state" </dev/null >/dev/null 2>&1 {VOLSD_LOCK_FD}>&- &
printf '%s\n%s\n' "$mount_path" "$!" >"$state"
volsd_log "froze $mount_path (already frozen: $([[ $changed == true ]] && echo no || echo yes)); auto-thaw in ${bound}s"
volsd_result op '"freeze"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mount_path")" \
  mode '"freeze"' frozen true changed "$changed" autoThawSeconds "$bound"
