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

# --- File system capacity (ModifyVolume, full file systems; docs/sandbox.md, "Volume growth"). ---
# A device's size is /sys/block/<nvmeXn1>/size in 512-byte sectors, as on Linux (the simulator writes
# it, and grows it when a ModifyVolume reaches `optimizing`). A file system's size is SIZE= (bytes) in
# its `.volsd-fs`: mkfs.xfs sets it to the device's size, xfs_growfs raises it to the device's size. Its
# used space is the bytes of the regular files under the data dir. A marker without SIZE= (made before
# sizes were modelled) takes its device's size.

# shim_device_bytes DEVICE: the block device's size in bytes, or returns 1 when the simulator gives none.
shim_device_bytes() {
  local path name sectors
  path=$(readlink -f -- "$R$1") || return 1
  name=${path##*/}
  [[ -f $R/sys/block/$name/size ]] || return 1
  read -r sectors <"$R/sys/block/$name/size" || return 1
  [[ $sectors =~ ^[0-9]+$ ]] || return 1
  printf '%s' $((sectors * 512))
}

# shim_fs_bytes DEVICE: the file system's size in bytes, or returns 1 when neither it nor the device's is known.
shim_fs_bytes() {
  local size
  size=$(shim_fs_field "$1" SIZE)
  if [[ $size =~ ^[0-9]+$ ]]; then
    printf '%s' "$size"
  else
    shim_device_bytes "$1"
  fi
}

# shim_used_bytes DIR: the bytes of the regular files under DIR.
shim_used_bytes() {
  find "$1/" -type f -printf '%s\n' 2>/dev/null | awk '{ b += $1 } END { printf "%d", b }'
}

# shim_set_fs_field DEVICE FIELD VALUE: sets FIELD=VALUE in the device's `.volsd-fs`.
shim_set_fs_field() {
  local dir
  dir=$(shim_data_dir "$1") || return 1
  awk -F= -v f="$2" -v v="$3" '$1 != f { print } END { print f "=" v }' "$dir/.volsd-fs" >"$dir/.volsd-fs.tmp"
  mv -f -- "$dir/.volsd-fs.tmp" "$dir/.volsd-fs"
}

# shim_mount_of PATH: "DEVICE MOUNTPOINT FSTYPE" of the mount holding host PATH (the longest mount point
# that is PATH or a parent of it), or returns 1.
shim_mount_of() {
  [[ -f $R/proc/mounts ]] || return 1
  awk -v p="$1" '
    {
      mp = $2
      inside = p == mp || mp == "/" || index(p, mp "/") == 1
      if (inside && length(mp) > best) { best = length(mp); line = $1 " " $2 " " $3 }
    }
    END { if (line == "") exit 1; print line }' "$R/proc/mounts"
}

# shim_real COMMAND: the real COMMAND, the first on PATH outside the shims' directory.
shim_real() {
  local dir here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
  IFS=: read -r -a dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ -n $dir && $(cd "$dir" 2>/dev/null && pwd -P) != "$here" && -x $dir/$1 && ! -d $dir/$1 ]] || continue
    printf '%s' "$dir/$1"
    return 0
  done
  return 1
}
