#!/usr/bin/env bash
# Volsd boot unit: at boot, mounts this instance's Volsd volume as soon as its device appears, makes
# sure it holds the pool's current content, and tells the acquire workflow, which then lets the
# instance go InService. Run by volsd-boot.service (ordered before the web server), once per boot.
#
# Configuration: /etc/volsd/boot.env (written by the user data; KEY=VALUE lines, read, never sourced):
#   VOLSD_SIGNAL_URL            the pool's host function URL (AWS_IAM auth)                required
#   VOLSD_REGION                the pool's Region                                         required
#   VOLSD_MOUNT_PATH            where to mount the volume (the pool's mount path)        default /srv/www
#   VOLSD_MOUNT_OPTIONS         mount options (nosuid,nodev are always added)             default noatime
#   VOLSD_MOUNT_ROOTS           roots the mount path must lie under                       default: any
#   VOLSD_DEVICE_WAIT_SECONDS   how long to wait for the volume's device (0-300)          default 120
#   VOLSD_IMDS_ENDPOINT         instance metadata endpoint                                default http://169.254.169.254
#   VOLSD_S3_ENDPOINT           S3 endpoint for a sync (VPC endpoint)                     optional
# Environment: VOLSD_ROOT (prefix of every host path; empty on a real host).
#
# 1. Waits (bounded) for the pool's volume: an EBS NVMe device (by-id name with the volume id as its
#    serial) whose filesystem is labelled `volsd` (Volsd-Format gives every pool volume that label).
#    The acquire attaches it while the OS boots, so it is usually there already.
# 2. Mounts it as Volsd-Mount does (same library: serial check, nosuid,nodev, /etc/volsd/mounts.d).
# 3. Signals the host function with the volume id and the generation on the volume. The function knows
#    the caller from its instance-profile credentials (SigV4), so a host can only complete its own
#    acquire. It answers ok (done), behind (a push landed meanwhile: Volsd-Sync to the generation it
#    names, then signal again; at most 5 rounds), fallback or refused (the workflow goes on over SSM).
# Any failure after the configuration is read is signalled as `failed`, so the workflow takes the SSM
# path at once instead of at its timeout; a unit that cannot signal at all leaves it to that timeout.
# Last line: VOLSD_RESULT {"op":"boot","volumeId","mountPath","generation","status"} (status
# signalled | fallback | refused | failed). Exit codes: volsd-lib.sh; 17 the signal was not accepted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=volsd-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/volsd-lib.sh" # volsd:include

readonly VOLSD_EXIT_NOT_SIGNALLED=17
readonly max_rounds=5

volsd_init boot
config_file="$R/etc/volsd/boot.env"
declare -A cfg=()
if [[ -r $config_file ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^(VOLSD_[A-Z0-9_]+)=(.*)$ ]] || continue
    cfg[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done <"$config_file"
fi
signal_url=${cfg[VOLSD_SIGNAL_URL]:-}
region=${cfg[VOLSD_REGION]:-}
mount_path=${cfg[VOLSD_MOUNT_PATH]:-/srv/www}
options=${cfg[VOLSD_MOUNT_OPTIONS]-noatime}
roots=${cfg[VOLSD_MOUNT_ROOTS]:-}
wait_seconds=${cfg[VOLSD_DEVICE_WAIT_SECONDS]:-120}
imds=${cfg[VOLSD_IMDS_ENDPOINT]:-http://169.254.169.254}
s3_endpoint=${cfg[VOLSD_S3_ENDPOINT]:-}
volsd_check VOLSD_SIGNAL_URL "$signal_url" '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/$'
volsd_check VOLSD_REGION "$region" '^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$'
volsd_check VOLSD_IMDS_ENDPOINT "$imds" '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._-]+)*$'
volsd_require_tools curl mount lsblk blkid flock awk readlink realpath

creds=()
# imds_credentials: the instance profile's credentials into creds (access key, secret, session token).
imds_credentials() {
  local token role json ak sk st
  token=$(curl -fsS --max-time 2 --retry 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$imds/latest/api/token") || return 1
  role=$(curl -fsS --max-time 2 --retry 3 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/iam/security-credentials/") || return 1
  role=${role%%$'\n'*}
  [[ $role =~ ^[A-Za-z0-9+=,.@_-]{1,64}$ ]] || return 1
  json=$(curl -fsS --max-time 2 --retry 3 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/iam/security-credentials/$role") || return 1
  ak=$(sed -n 's/.*"AccessKeyId" *: *"\([^"]*\)".*/\1/p' <<<"$json" | head -n1)
  sk=$(sed -n 's/.*"SecretAccessKey" *: *"\([^"]*\)".*/\1/p' <<<"$json" | head -n1)
  st=$(sed -n 's/.*"Token" *: *"\([^"]*\)".*/\1/p' <<<"$json" | head -n1)
  [[ -n $ak && -n $sk ]] || return 1
  creds=("$ak" "$sk" "$st")
}

# signal BODY: POSTs BODY to the host function, signed with the instance's credentials; prints the
# answer's body. Retries connection failures and 5xx (each signal is safe to repeat).
signal() {
  local out code
  ((${#creds[@]} == 3)) || imds_credentials || {
    volsd_log "no instance-profile credentials from $imds"
    return 1
  }
  out=$(curl -sS --max-time 15 --retry 3 --retry-connrefused -w '\n%{http_code}' \
    --aws-sigv4 "aws:amz:$region:lambda" --user "${creds[0]}:${creds[1]}" \
    -H "x-amz-security-token: ${creds[2]}" -H 'content-type: application/json' \
    --data-binary "$1" "$signal_url") || return 1
  code=${out##*$'\n'}
  printf '%s' "${out%$'\n'*}"
  [[ $code =~ ^(200|409)$ ]]
}

# field JSON NAME: a string or number field of a flat JSON answer.
field() {
  sed -n "s/.*\"$2\" *: *\"\\{0,1\\}\\([^\",}]*\\)\"\\{0,1\\}.*/\\1/p" <<<"$1" | head -n1
}

# fail_and_signal EXIT CODE MESSAGE: tells the workflow to go on over SSM, then fails.
fail_and_signal() {
  signal "$(volsd_json status '"failed"' reason "$(volsd_json_str "$3")")" >/dev/null || true
  volsd_fail "$1" "$2" "$3"
}

# pool_device: "serial device" of the first EBS NVMe device whose filesystem is labelled volsd.
pool_device() {
  local link dev serial
  for link in "$R"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol*; do
    [[ -L $link ]] || continue
    serial=${link##*_}
    dev=$(readlink -f -- "$link") || continue
    [[ $dev == "$R/dev/"* ]] || continue
    [[ $(blkid -o value -s LABEL -- "$dev" 2>/dev/null) == volsd ]] || continue
    printf '%s %s\n' "$serial" "${dev#"$R"}"
    return 0
  done
  return 1
}

if ! (volsd_check_mount_path "$mount_path" "$roots") >/dev/null 2>&1 ||
  [[ ! $options =~ $VOLSD_RE_MOUNT_OPTIONS ]] || [[ ! $wait_seconds =~ $VOLSD_RE_SECONDS ]]; then
  fail_and_signal "$VOLSD_EXIT_BAD_PARAMETERS" bad-parameters "boot.env: bad mount path, options or wait ($mount_path, $options, $wait_seconds)"
fi

found=''
tries=$((wait_seconds * 5 + 1))
while ((tries-- > 0)); do
  found=$(pool_device) && break
  found=''
  ((tries > 0)) && sleep 0.2
done
[[ -n $found ]] ||
  fail_and_signal "$VOLSD_EXIT_DEVICE_NOT_FOUND" device-not-found "no Volsd volume appeared in ${wait_seconds}s"
serial=${found%% *}
device=${found#* }
volume="vol-${serial#vol}"
VOLSD_VOLUME=$volume
volsd_check_volume_id "$volume"

volsd_lock "$volume" 120
volsd_verify_device "$device" "$volume" ||
  fail_and_signal "$VOLSD_EXIT_DEVICE_MISMATCH" device-mismatch "device $device does not carry the serial of $volume"
# A mount failure exits its subshell only, so the workflow still hears about it.
if ! (volsd_mount_volume "$volume" "$device" "$mount_path" "$options" >/dev/null); then
  fail_and_signal "$VOLSD_EXIT_MOUNT_FAILED" mount-failed "mount of $device at $mount_path failed"
fi
generation=$(volsd_read_generation "$mount_path")
volsd_log "$device mounted at $mount_path (generation $generation)"

script_dir=$(dirname "${BASH_SOURCE[0]}")
for ((round = 1; round <= max_rounds; round++)); do
  if ! answer=$(signal "$(volsd_json status '"mounted"' volumeId "$(volsd_json_str "$volume")" generation "$generation")"); then
    volsd_fail "$VOLSD_EXIT_NOT_SIGNALLED" not-signalled "the host function did not accept the signal: ${answer:-no answer}"
  fi
  status=$(field "$answer" status)
  case $status in
    ok)
      volsd_log "signalled: generation $generation is current"
      volsd_result op '"boot"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mount_path")" generation "$generation" status '"signalled"'
      exit 0
      ;;
    behind)
      target=$(field "$answer" generation)
      volsd_log "a push landed meanwhile: syncing to generation $target (round $round)"
      # Volsd-Sync of the package, for this volume only; it releases our lock's fd and takes its own.
      exec {VOLSD_LOCK_FD}>&-
      if ! VOLSD_BUCKET=$(field "$answer" bucket) VOLSD_PREFIX=$(field "$answer" prefix) VOLSD_GENERATION=$target \
        VOLSD_VOLUME_ID=$volume VOLSD_MAX_OBJECT_BYTES=$(field "$answer" maxObjectBytes) \
        VOLSD_S3_ENDPOINT=$s3_endpoint VOLSD_REGION=$region bash "$script_dir/volsd-sync.sh" >/dev/null; then
        fail_and_signal "$VOLSD_EXIT_SYNC_FAILED" sync-failed "Volsd-Sync to generation $target failed"
      fi
      volsd_lock "$volume" 120
      generation=$(volsd_read_generation "$mount_path")
      ;;
    *)
      volsd_log "the host function answered $status: $(field "$answer" reason)"
      volsd_result op '"boot"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mount_path")" generation "$generation" status "$(volsd_json_str "${status:-refused}")"
      exit "$VOLSD_EXIT_NOT_SIGNALLED"
      ;;
  esac
done
fail_and_signal "$VOLSD_EXIT_SYNC_FAILED" sync-failed "still behind after $max_rounds syncs"
