# shellcheck shell=bash
# The constants and result variables below are read by the scripts that source this file.
# shellcheck disable=SC2034
#
# Volsd script library: the helpers shared by scripts/volsd-*.sh.
#
# Each script sources this file with a line ending in `# volsd:include`; bundleScript() in
# lambdas/shared/documents.ts replaces that line with this file, so every SSM document carries one
# self-contained script.
#
# Conventions for every Volsd script:
# - Runs as root from an SSM document (aws:runShellScript) on Amazon Linux 2023 (Nitro, NVMe EBS).
# - Parameters come as VOLSD_* environment variables, validated again here (the document's
#   allowedPattern is the first gate, a hand run of the script is the second).
# - Every absolute path of the host is prefixed with ${VOLSD_ROOT:-}: empty on a real host, the host's
#   directory in the Volsd sandbox, where shims stand in for the block-device commands. The scripts
#   never branch on the sandbox. The one exception is /proc/<pid> of the script's own processes
#   (the freeze watchdog), which are real processes in both worlds.
# - Logs go to stderr; stdout carries machine-readable lines only:
#     VOLSD_RESULT {json}    one per volume handled (the last line for single-volume scripts)
#     VOLSD_REJECTED {json}  a listing key that Volsd-Sync refused (Volsd-Sync only)
#   SSM keeps the first 24,000 characters of stdout and 8,000 of stderr.
# - Exit codes (ExitCode in lambdas/shared/documents.ts holds the same table):
#     0 ok | 2 bad parameters | 3 device not found | 4 device serial mismatch | 5 mount conflict
#     6 mount failed | 7 unmount failed | 8 sync failed | 9 path escape | 10 freeze failed
#     11 lock timeout | 12 tool missing | 13 format failed | 14 not mounted | 15 mount path refused
#     16 host unsupported | 17 no space (the content does not fit the volume's file system)

readonly VOLSD_EXIT_OK=0
readonly VOLSD_EXIT_BAD_PARAMETERS=2
readonly VOLSD_EXIT_DEVICE_NOT_FOUND=3
readonly VOLSD_EXIT_DEVICE_MISMATCH=4
readonly VOLSD_EXIT_MOUNT_CONFLICT=5
readonly VOLSD_EXIT_MOUNT_FAILED=6
readonly VOLSD_EXIT_UNMOUNT_FAILED=7
readonly VOLSD_EXIT_SYNC_FAILED=8
readonly VOLSD_EXIT_PATH_ESCAPE=9
readonly VOLSD_EXIT_FREEZE_FAILED=10
readonly VOLSD_EXIT_LOCK_TIMEOUT=11
readonly VOLSD_EXIT_TOOL_MISSING=12
readonly VOLSD_EXIT_FORMAT_FAILED=13
readonly VOLSD_EXIT_NOT_MOUNTED=14
readonly VOLSD_EXIT_MOUNT_REFUSED=15
readonly VOLSD_EXIT_HOST_UNSUPPORTED=16
readonly VOLSD_EXIT_NO_SPACE=17

# The parameter grammar; documents.ts uses the same expressions as allowedPattern.
readonly VOLSD_RE_VOLUME_ID='^vol-([0-9a-f]{8}|[0-9a-f]{17})$'
readonly VOLSD_RE_MOUNT_PATH='^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$'
readonly VOLSD_RE_MOUNT_ROOTS='^((/[A-Za-z0-9_][A-Za-z0-9._-]*)+( (/[A-Za-z0-9_][A-Za-z0-9._-]*)+)*)?$'
readonly VOLSD_RE_MOUNT_OPTIONS='^[A-Za-z0-9_=,.:-]*$'
readonly VOLSD_RE_SECONDS='^([0-9]{1,2}|[12][0-9]{2}|300)$'

# Mount points that would take the host down if a volume covered them.
readonly VOLSD_FORBIDDEN_MOUNTS=' /bin /boot /dev /etc /home /lib /lib64 /opt /proc /root /run /sbin /srv /sys /tmp /usr /var /var/lib /var/log '
# Trees no volume is mounted at or under (by prefix, after resolving symlinks on the host): content
# there is run or read by root (cron.d, systemd units, PATH, authorized_keys). Volsd's own state tree
# /var/lib/volsd (the sync worker's mounts) is the one exception. lambdas/shared/mount-path.ts holds
# the same lists for the edge.
readonly VOLSD_SYSTEM_TREES='/bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /proc /root /run /sbin /sys /tmp /usr /var/lib /var/lock /var/log /var/run /var/spool'
readonly VOLSD_OWN_TREE=/var/lib/volsd
# Options every Volsd mount carries: pool content never brings setuid programs or device nodes.
readonly VOLSD_FORCED_OPTIONS='nosuid,nodev'

VOLSD_OP=volsd
VOLSD_VOLUME=''
R=''

# volsd_init OP: strict mode, locale, VOLSD_ROOT, error trap. Call first.
volsd_init() {
  VOLSD_OP=$1
  set -Eeuo pipefail
  umask 022
  # English messages (fsfreeze errors are matched) and UTF-8 file names for the AWS CLI.
  export LC_ALL=C.UTF-8
  R=${VOLSD_ROOT:-}
  R=${R%/}
  if [[ -n $R ]] && { [[ ! $R =~ ^(/[A-Za-z0-9._-]+)+$ ]] || [[ ! -d $R ]]; }; then
    volsd_fail "$VOLSD_EXIT_BAD_PARAMETERS" bad-parameters "VOLSD_ROOT must be an existing directory with a plain path"
  fi
  trap 'volsd_log "unexpected failure (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
}

volsd_log() {
  printf '%s volsd-%s%s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$VOLSD_OP" "${VOLSD_VOLUME:+ $VOLSD_VOLUME}" "$*" >&2
}

# volsd_json_str S: S as a JSON string literal.
volsd_json_str() {
  local s=$1 code ch esc
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  if [[ $s == *[$'\x01'-$'\x1f\x7f']* ]]; then
    for code in {1..31} 127; do
      printf -v ch '%b' "\\x$(printf '%02x' "$code")"
      printf -v esc '\\u%04x' "$code"
      s=${s//"$ch"/$esc}
    done
  fi
  printf '"%s"' "$s"
}

# volsd_json_opt S: S as a JSON string literal, or null when S is empty.
volsd_json_opt() {
  if [[ -n $1 ]]; then volsd_json_str "$1"; else printf 'null'; fi
}

# volsd_json KEY VALUE [KEY VALUE...]: a JSON object; VALUE is raw JSON (quote strings with volsd_json_str).
volsd_json() {
  local out='' sep=''
  while (($# >= 2)); do
    out+="$sep\"$1\":$2"
    sep=','
    shift 2
  done
  printf '{%s}' "$out"
}

volsd_result() {
  printf 'VOLSD_RESULT %s\n' "$(volsd_json "$@")"
}

# volsd_fail EXIT CODE MESSAGE [KEY VALUE...]: logs, prints a failed VOLSD_RESULT and exits.
volsd_fail() {
  local exit_code=$1 code=$2 message=$3
  shift 3
  volsd_log "error: $message"
  local fields=(op "$(volsd_json_str "$VOLSD_OP")")
  [[ -n $VOLSD_VOLUME ]] && fields+=(volumeId "$(volsd_json_str "$VOLSD_VOLUME")")
  fields+=(status '"failed"' code "$(volsd_json_str "$code")" exitCode "$exit_code" error "$(volsd_json_str "$message")" "$@")
  volsd_result "${fields[@]}"
  trap - ERR
  exit "$exit_code"
}

# The marker of an AWS CLI found to be v2 on this host: `aws --version` takes most of a second, so it
# runs once per boot (/run is emptied at boot), not at every sync.
readonly VOLSD_AWS_CLI_CHECKED=/run/volsd/aws-cli-v2

# volsd_require_tools COMMAND...: the instance requirements (README, "Instance requirements"), checked
# before the script does anything: bash 4.4 or later, every COMMAND on PATH, and for lsblk the SERIAL
# column (`lsblk -dno SERIAL`), for aws the AWS CLI v2 (`aws --version`: aws-cli/2 or later; once per
# boot, see VOLSD_AWS_CLI_CHECKED). Every requirement not met is named in one failure, its result's
# `missing` listing them (bash-4.4, a command's name, lsblk-serial, aws-cli-v2): exit 12
# (tool-missing) when only commands are missing, else exit 16 (host-unsupported).
volsd_require_tools() {
  local tool out exit_code=$VOLSD_EXIT_TOOL_MISSING code=tool-missing list='' json='' sep=''
  # Never empty when bash is too old, whose `set -u` takes an empty array's "${a[@]}" for unset.
  local -a missing=() details=()
  if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    missing+=(bash-4.4)
    details+=("bash 4.4 or later (this is $BASH_VERSION)")
  fi
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      missing+=("$tool")
      details+=("command $tool")
      continue
    fi
    case $tool in
    lsblk)
      if ! out=$(lsblk -dno SERIAL 2>&1 >/dev/null); then
        out=${out%%$'\n'*}
        missing+=(lsblk-serial)
        details+=("lsblk with the SERIAL column (lsblk -dno SERIAL: ${out:0:120})")
      fi
      ;;
    aws)
      [[ ! -e $R$VOLSD_AWS_CLI_CHECKED ]] || continue
      out=$(aws --version 2>&1) || true
      out=${out%%$'\n'*}
      if [[ $out =~ ^aws-cli/([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 2)); then
        { mkdir -p "$R${VOLSD_AWS_CLI_CHECKED%/*}" && : >>"$R$VOLSD_AWS_CLI_CHECKED"; } 2>/dev/null || true
      else
        missing+=(aws-cli-v2)
        details+=("the AWS CLI v2 (aws --version: ${out:0:120})")
      fi
      ;;
    esac
  done
  ((${#missing[@]} > 0)) || return 0
  for tool in "${missing[@]}"; do
    json+=$sep$(volsd_json_str "$tool")
    sep=,
    case $tool in
    bash-4.4 | lsblk-serial | aws-cli-v2)
      exit_code=$VOLSD_EXIT_HOST_UNSUPPORTED
      code=host-unsupported
      ;;
    esac
  done
  if [[ $code == tool-missing ]]; then
    list=${missing[*]}
    volsd_fail "$exit_code" "$code" "required command not found: ${list// /, }" missing "[$json]"
  fi
  sep=''
  for out in "${details[@]}"; do
    list+=$sep$out
    sep='; '
  done
  volsd_fail "$exit_code" "$code" "this host does not meet Volsd's instance requirements (README, Instance requirements); missing: $list" missing "[$json]"
}

# volsd_check NAME VALUE REGEX: VALUE must match REGEX.
volsd_check() {
  [[ $2 =~ $3 ]] || volsd_fail "$VOLSD_EXIT_BAD_PARAMETERS" bad-parameters "invalid $1: ${2@Q}"
}

volsd_check_volume_id() {
  volsd_check VOLSD_VOLUME_ID "$1" "$VOLSD_RE_VOLUME_ID"
  VOLSD_VOLUME=$1
}

# volsd_check_mount_path PATH [ROOTS]: the grammar, then volsd_check_mount_target (ROOTS: the
# space-separated roots a mount path must lie under, from VOLSD_MOUNT_ROOTS; empty: any root).
volsd_check_mount_path() {
  volsd_check VOLSD_MOUNT_PATH "$1" "$VOLSD_RE_MOUNT_PATH"
  ((${#1} <= 200)) || volsd_fail "$VOLSD_EXIT_BAD_PARAMETERS" bad-parameters "VOLSD_MOUNT_PATH is longer than 200 characters"
  [[ $VOLSD_FORBIDDEN_MOUNTS != *" $1 "* ]] ||
    volsd_fail "$VOLSD_EXIT_BAD_PARAMETERS" bad-parameters "refusing to mount over the system directory $1"
  volsd_check VOLSD_MOUNT_ROOTS "${2:-}" "$VOLSD_RE_MOUNT_ROOTS"
  volsd_check_mount_target "$1" "${2:-}"
}

# volsd_under PATH DIR: PATH is DIR or lies under it.
volsd_under() {
  [[ $1 == "$2" || $1 == "$2"/* || $2 == / ]]
}

# volsd_system_tree PATH: prints the system tree PATH lies in (at or under), if any.
volsd_system_tree() {
  local tree
  volsd_under "$1" "$VOLSD_OWN_TREE" && return 0
  for tree in $VOLSD_SYSTEM_TREES; do
    if volsd_under "$1" "$tree"; then
      printf '%s' "$tree"
      return 0
    fi
  done
}

# volsd_resolve PATH: the host path PATH leads to, its symlinks resolved component by component
# (realpath -m: missing components allowed), or nothing when it leads out of the host root (only
# under VOLSD_ROOT). A mount point is taken as it stands: on a host it is a directory, and the
# sandbox's mount shim makes it a symlink to the volume's data.
volsd_resolve() {
  local top cur='' comp real
  local -a comps
  top=$(realpath -m -- "${R:-/}")
  IFS=/ read -r -a comps <<<"${1#/}"
  for comp in "${comps[@]}"; do
    [[ -n $comp ]] || continue
    cur+=/$comp
    [[ -L $R$cur && -z $(volsd_source_at "$cur") ]] || continue
    real=$(realpath -m -- "$R$cur")
    if [[ $top != / ]]; then
      if [[ $real == "$top" ]]; then
        real=/
      elif [[ $real == "$top"/* ]]; then
        real=${real#"$top"}
      else
        return 0
      fi
    fi
    cur=${real%/}
  done
  printf '%s' "${cur:-/}"
}

# volsd_check_mount_target PATH [ROOTS]: refuses (exit 15) a mount path that, its symlinks resolved on
# this host, lies in a system tree or, when ROOTS (space-separated absolute paths) is given, outside
# every root (each resolved too). Sets VOLSD_MOUNT_TARGET to the resolved path.
volsd_check_mount_target() {
  local mnt=$1 roots=${2:-} real tree root real_root inside=false
  real=$(volsd_resolve "$mnt")
  [[ -n $real ]] || volsd_fail "$VOLSD_EXIT_MOUNT_REFUSED" mount-path-refused \
    "refusing to mount at $mnt: it resolves outside the host's root" mountPath "$(volsd_json_str "$mnt")"
  tree=$(volsd_system_tree "$real")
  if [[ -n $tree || $real == / ]]; then
    volsd_fail "$VOLSD_EXIT_MOUNT_REFUSED" mount-path-refused \
      "refusing to mount at $mnt: it resolves to $real, in the system tree ${tree:-/}" \
      mountPath "$(volsd_json_str "$mnt")" resolved "$(volsd_json_str "$real")"
  fi
  if [[ -n $roots ]]; then
    for root in $roots; do
      real_root=$(volsd_resolve "$root")
      if [[ -n $real_root ]] && volsd_under "$real" "$real_root"; then
        inside=true
        break
      fi
    done
    $inside || volsd_fail "$VOLSD_EXIT_MOUNT_REFUSED" mount-path-refused \
      "refusing to mount at $mnt: it resolves to $real, outside the allowed mount roots ($roots)" \
      mountPath "$(volsd_json_str "$mnt")" resolved "$(volsd_json_str "$real")"
  fi
  VOLSD_MOUNT_TARGET=$real
}

# volsd_forced_options OPTIONS: OPTIONS with nosuid and nodev added (and any suid, dev or exec-free
# contradiction of them dropped).
volsd_forced_options() {
  local out='' option
  local -a list
  IFS=, read -r -a list <<<"$1"
  for option in "${list[@]}"; do
    case $option in
    '' | suid | dev | nosuid | nodev) ;;
    *) out+=${out:+,}$option ;;
    esac
  done
  printf '%s' "${out:+$out,}$VOLSD_FORCED_OPTIONS"
}

# The NVMe serial of an EBS volume is its id without the dash (vol-0abc -> vol0abc).
volsd_serial() {
  printf '%s' "${1/-/}"
}

# volsd_find_device VOLUME_ID: prints the host path of the volume's block device (/dev/nvme1n1), or
# returns 1. Looks at the udev by-id name first (amazon-ec2-utils rules), then at every disk's serial.
volsd_find_device() {
  local serial link target dev
  serial=$(volsd_serial "$1")
  link="$R/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial"
  if [[ -L $link ]]; then
    target=$(readlink -f -- "$link") || return 1
    if [[ -e $target && $target == "$R/dev/"* ]]; then
      printf '%s\n' "${target#"$R"}"
      return 0
    fi
  fi
  dev=$(lsblk -dnpo NAME,SERIAL 2>/dev/null | awk -v s="$serial" '$2 == s { print $1; exit }') || dev=''
  [[ -n $dev ]] || return 1
  printf '%s\n' "${dev#"$R"}"
}

# volsd_wait_device VOLUME_ID SECONDS: like volsd_find_device, polling until the device appears.
volsd_wait_device() {
  local tries=$(($2 * 5 + 1))
  while ((tries-- > 0)); do
    volsd_find_device "$1" && return 0
    ((tries > 0)) && sleep 0.2
  done
  return 1
}

# volsd_verify_device DEVICE VOLUME_ID: the device's NVMe serial must name the volume.
volsd_verify_device() {
  local serial
  serial=$(lsblk -dno SERIAL -- "$R$1" 2>/dev/null) || serial=''
  serial=${serial//[[:space:]]/}
  if [[ $serial != "$(volsd_serial "$2")" ]]; then
    volsd_log "device $1 reports serial '${serial:-<none>}', expected $(volsd_serial "$2")"
    return 1
  fi
}

# volsd_device_or_fail VOLUME_ID WAIT_SECONDS: sets VOLSD_DEVICE to the verified device of the
# volume, or exits (never call it inside $(...): its exit would only leave the subshell).
volsd_device_or_fail() {
  local dev
  if ! dev=$(volsd_wait_device "$1" "$2"); then
    volsd_fail "$VOLSD_EXIT_DEVICE_NOT_FOUND" device-not-found "no block device for $1 after ${2}s (is it attached?)"
  fi
  volsd_verify_device "$dev" "$1" ||
    volsd_fail "$VOLSD_EXIT_DEVICE_MISMATCH" device-mismatch "device $dev does not carry the serial of $1" device "$(volsd_json_str "$dev")"
  VOLSD_DEVICE=$dev
}

# volsd_source_at MOUNT_PATH: the device mounted at MOUNT_PATH (the top of the stack), if any.
volsd_source_at() {
  [[ -r $R/proc/mounts ]] || return 0
  awk -v m="$1" '$2 == m { src = $1 } END { if (src != "") print src }' "$R/proc/mounts"
}

# volsd_mounts_of DEVICE: the mount points of DEVICE, one a line.
volsd_mounts_of() {
  [[ -r $R/proc/mounts ]] || return 0
  awk -v d="$1" '$1 == d { print $2 }' "$R/proc/mounts"
}

# volsd_lock NAME SECONDS: holds $R/run/volsd/lock/NAME until the script exits (serialises the
# operations on one volume: a sync, an unmount and a freeze never overlap). Long-lived children must
# close VOLSD_LOCK_FD, or they keep the lock.
volsd_lock() {
  mkdir -p "$R/run/volsd/lock"
  exec {VOLSD_LOCK_FD}>"$R/run/volsd/lock/$1"
  flock -w "$2" "$VOLSD_LOCK_FD" ||
    volsd_fail "$VOLSD_EXIT_LOCK_TIMEOUT" lock-timeout "another Volsd operation on $1 held its lock for ${2}s"
}

volsd_record_path() {
  printf '%s' "$R/etc/volsd/mounts.d/$1"
}

# volsd_record VOLUME_ID MOUNT_PATH: remembers that a Volsd volume is mounted (read by Volsd-Sync).
volsd_record() {
  local record
  record=$(volsd_record_path "$1")
  mkdir -p "${record%/*}"
  printf '%s\n' "$2" >"$record.tmp"
  mv -f -- "$record.tmp" "$record"
}

volsd_forget() {
  rm -f -- "$(volsd_record_path "$1")"
}

# volsd_read_generation MOUNT_PATH: the content generation recorded on the mounted volume (0 if none).
volsd_read_generation() {
  local file="$R$1/.volsd/generation" g=0
  if [[ -f $file ]]; then
    read -r g <"$file" || true
  fi
  [[ $g =~ ^[0-9]{1,15}$ ]] || g=0
  printf '%s' "$((10#$g))"
}

# volsd_mount_volume VOLUME_ID DEVICE MOUNT_PATH OPTIONS: mounts DEVICE at MOUNT_PATH unless it is
# already there; sets VOLSD_MOUNT_STATE to mounted or already-mounted. Exits on a conflict.
volsd_mount_volume() {
  local volume=$1 dev=$2 mnt=$3 options=$4 here fstype out
  local -a elsewhere
  here=$(volsd_source_at "$mnt")
  if [[ $here == "$dev" ]]; then
    VOLSD_MOUNT_STATE=already-mounted
    volsd_record "$volume" "$mnt"
    return 0
  fi
  [[ -z $here ]] ||
    volsd_fail "$VOLSD_EXIT_MOUNT_CONFLICT" mount-conflict "$mnt already holds another device ($here)" mountPath "$(volsd_json_str "$mnt")"
  mapfile -t elsewhere < <(volsd_mounts_of "$dev")
  ((${#elsewhere[@]} == 0)) ||
    volsd_fail "$VOLSD_EXIT_MOUNT_CONFLICT" mount-conflict "$volume is already mounted at ${elsewhere[0]}" mountPath "$(volsd_json_str "${elsewhere[0]}")"
  if [[ -e $R$mnt && ! -d $R$mnt ]]; then
    volsd_fail "$VOLSD_EXIT_MOUNT_CONFLICT" mount-conflict "$mnt exists and is not a directory"
  fi
  mkdir -p -- "$R$mnt"
  # Every idle volume of a pool comes from one snapshot, so all carry the same XFS UUID, and XFS
  # refuses to mount a second filesystem with a UUID already mounted unless told `nouuid`.
  fstype=$(blkid -o value -s TYPE -- "$R$dev" 2>/dev/null) || fstype=''
  options=$(volsd_forced_options "$options")
  if [[ $fstype == xfs && ,$options, != *,nouuid,* ]]; then
    options=${options:+$options,}nouuid
  fi
  if ! out=$(mount ${options:+-o "$options"} -- "$R$dev" "$R$mnt" 2>&1); then
    volsd_fail "$VOLSD_EXIT_MOUNT_FAILED" mount-failed "mount of $dev at $mnt failed: $out" device "$(volsd_json_str "$dev")"
  fi
  [[ $(volsd_source_at "$mnt") == "$dev" ]] ||
    volsd_fail "$VOLSD_EXIT_MOUNT_FAILED" mount-failed "mount reported success but $mnt does not show $dev"
  VOLSD_MOUNT_STATE=mounted
  volsd_record "$volume" "$mnt"
}

# volsd_frozen_state VOLUME_ID: the file that records a freeze by Volsd-Freeze and its watchdog.
volsd_frozen_state() {
  printf '%s' "$R/run/volsd/frozen/$1"
}

# volsd_stop_watchdog VOLUME_ID: stops the auto-thaw watchdog of a freeze, if it still runs.
volsd_stop_watchdog() {
  local state pid='' cmdline
  state=$(volsd_frozen_state "$1")
  [[ -f $state ]] || return 0
  { read -r _ && read -r pid; } <"$state" || true
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  # A recycled pid must not be killed: only our watchdog carries this name in its command line.
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || cmdline=''
  if [[ $cmdline == *volsd-autothaw* ]]; then
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  fi
}

# volsd_thaw VOLUME_ID MOUNT_PATH: thaws the filesystem; a filesystem that is not frozen is fine.
# Returns 1 (with VOLSD_THAW_ERROR set) if fsfreeze fails for another reason.
volsd_thaw() {
  local out
  volsd_stop_watchdog "$1"
  VOLSD_THAWED=true
  if ! out=$(fsfreeze -u -- "$R$2" 2>&1); then
    if [[ $out == *"Invalid argument"* ]]; then
      VOLSD_THAWED=false
    else
      VOLSD_THAW_ERROR=$out
      return 1
    fi
  fi
  rm -f -- "$(volsd_frozen_state "$1")"
}
