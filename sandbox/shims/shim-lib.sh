# shellcheck shell=bash
# Shared by the Volsd sandbox shims: stand-ins for the commands that need a real block device, put
# first on PATH by sandbox/agent/runner.ts, so the real scripts run unchanged on a simulated host.
#
# The simulated host (the contract with the simulator, sandbox/sim):
# - $VOLSD_ROOT is the host's "/".
# - $VOLSD_ROOT/dev/nvme<N>n1 is a regular file holding the absolute path of the volume's data dir
#   (<rootDir>/volumes/<volumeId>); $VOLSD_ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<serial>
#   links to it. The serial the shims report is derived from the data dir's name (vol-x -> volx),
#   as the NVMe controller of a real attachment reports the volume it belongs to.
# - $VOLSD_ROOT/proc/mounts is the mount table, in Linux format with host paths
#   (/dev/nvme1n1 /srv/www xfs rw,noatime 0 0); the simulator reads it (a mounted volume detaches
#   `busy`).
# - A mount makes the mount point a symlink to the data dir; umount puts an empty directory back.
# - A volume has a filesystem when its data dir holds `.volsd-fs` (TYPE=/LABEL=/UUID= lines; an
#   empty file means xfs). mkfs.xfs writes it. It sits in the content's root, inside the `.volsd*`
#   namespace that Volsd-Sync never syncs nor deletes, so the scripts need no sandbox knowledge.
# - Fault injection: when $VOLSD_ROOT/run/volsd-shim/fail/<command> exists, that shim fails as the
#   real command would (its content, if any, replaces the error message).
# - Shim state lives in $VOLSD_ROOT/run/volsd-shim/ (frozen filesystems, the mount table's lock).
#
# Paths given to a shim may carry the $VOLSD_ROOT prefix or not: both name the same host path.

if [[ -z ${VOLSD_ROOT:-} ]]; then
  echo "${0##*/}: this is the Volsd sandbox shim; VOLSD_ROOT must name the simulated host's root" >&2
  exit 1
fi
R=${VOLSD_ROOT%/}
SHIM_STATE=$R/run/volsd-shim
SHIM_NAME=${0##*/}

# shim_host PATH: PATH as the host sees it (without the $VOLSD_ROOT prefix).
shim_host() {
  if [[ $1 == "$R" ]]; then
    printf '/'
  elif [[ $1 == "$R"/* ]]; then
    printf '%s' "${1#"$R"}"
  else
    printf '%s' "$1"
  fi
}

# shim_injected_failure DEFAULT_MESSAGE EXIT: fails like the real command if a fault is injected.
shim_injected_failure() {
  local fault=$SHIM_STATE/fail/$SHIM_NAME message
  [[ -e $fault ]] || return 0
  message=$(cat "$fault")
  printf '%s\n' "${message:-$1}" >&2
  exit "$2"
}

# shim_data_dir DEVICE: the data dir behind a host device path, or returns 1.
shim_data_dir() {
  local file=$R$1 dir
  [[ $1 == /dev/* && -f $file ]] || return 1
  read -r dir <"$file" || true
  [[ -n $dir && -d $dir ]] || return 1
  printf '%s' "$dir"
}

# shim_serial DEVICE: the NVMe serial of the device (its volume id without the dash).
shim_serial() {
  local dir name
  dir=$(shim_data_dir "$1") || return 1
  name=${dir##*/}
  printf '%s' "${name/-/}"
}

# shim_fstype DEVICE: the filesystem type on the device, or returns 1 if it has none.
shim_fstype() {
  local dir type=''
  dir=$(shim_data_dir "$1") || return 1
  [[ -f $dir/.volsd-fs ]] || return 1
  type=$(awk -F= '$1 == "TYPE" { print $2; exit }' "$dir/.volsd-fs")
  printf '%s' "${type:-xfs}"
}

shim_fs_field() { # DEVICE FIELD
  local dir
  dir=$(shim_data_dir "$1") || return 0
  [[ -f $dir/.volsd-fs ]] || return 0
  awk -F= -v f="$2" '$1 == f { print $2; exit }' "$dir/.volsd-fs"
}

# shim_mounts_lock: serialises edits of the mount table (held until the shim exits).
shim_mounts_lock() {
  local fd
  mkdir -p "$SHIM_STATE" "$R/proc"
  exec {fd}>"$SHIM_STATE/mounts.lock"
  flock "$fd"
}

# shim_mount_line FIELD VALUE: the last mount table line whose FIELD (1 device, 2 mount point) is VALUE.
shim_mount_line() {
  [[ -f $R/proc/mounts ]] || return 0
  awk -v f="$1" -v v="$2" '$f == v { line = $0 } END { if (line != "") print line }' "$R/proc/mounts"
}

shim_frozen_flag() { # DEVICE
  printf '%s' "$SHIM_STATE/frozen/${1##*/}"
}
