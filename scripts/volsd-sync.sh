#!/usr/bin/env bash
# Volsd-Sync: brings every Volsd volume mounted on this host to the content of s3://BUCKET/PREFIX.
#
# Environment:
#   VOLSD_BUCKET             the push bucket                                             required
#   VOLSD_PREFIX             the content tree's prefix                                   default live/
#   VOLSD_GENERATION         the content generation this sync makes current             required
#   VOLSD_VOLUME_ID          sync only this volume (it must be mounted here)             default: all
#   VOLSD_S3_ENDPOINT        an S3-compatible or VPC endpoint URL                        optional
#   VOLSD_REGION             the bucket's region                                         optional
#   VOLSD_SYNC_CONCURRENCY   volumes synced at once                                      default 4
#   VOLSD_MAX_OBJECT_BYTES   largest object synced, in bytes (the pool's push limit)     default 1073741824
#   VOLSD_UNTRUSTED          volumes (space-separated ids) to rebuild: emptied first       default none
#   VOLSD_ROOT               prefix of every host path (empty on a real host)
#
# The volumes are the ones Volsd-Mount recorded in /etc/volsd/mounts.d and that are still mounted
# there (a stale record is reported as skipped). Per volume, `aws s3 sync --delete --exact-timestamps`
# moves only what changed (size or LastModified, which S3 keeps to the second: two same-size versions
# written within one second look alike, so a file whose key's ETag differs from the one recorded in
# <mount>/.volsd/etags by the last successful sync is fetched again) and deletes what was deleted, then
# <mount>/.volsd/generation is raised to VOLSD_GENERATION
# (never lowered: the tree just synced is at least as new as any generation recorded before).
#
# Path guard. A key must never write outside the mount root, so before any transfer the prefix is
# listed once (s3api list-objects-v2) and every key is classified; these are refused, reported and
# excluded from the sync (an excluded key is neither downloaded nor deleted locally):
#   parent-segment (..), dot-segment (.), empty-segment (//), absolute (/ after the prefix),
#   backslash, control-character, too-long (key over 1024 bytes or a name over 255),
#   reserved (a first segment starting with .volsd: the namespace of Volsd's own markers),
#   too-large (an object over VOLSD_MAX_OBJECT_BYTES: the fan-out refuses such a push, but the object
#   stays in the bucket and this sync runs over the whole tree).
# Directory markers (keys ending in /) are skipped silently: the AWS CLI cannot download them. The
# valid keys of the same listing are synced. A sync is refused for a volume whose tree holds a
# symlink that resolves outside the mount root (a download through it would land outside). After
# the sync, a tripwire checks again for escaping symlinks, for regular files changed beside the
# mount root (in each of its parent directories) and at the resolved target of every refused `..`
# key; anything found fails the volume with exit 9. The AWS CLI's own parent-directory check covers
# keys added between the listing and the sync.
#
# Output, stdout: one VOLSD_RESULT {"op":"sync","volumeId","mountPath","status","generation",
# "filesChanged","bytesChanged","rejectedKeys",...} per volume (status ok | failed | skipped), at most
# 20 VOLSD_REJECTED {"key","reason"} lines, and a last VOLSD_RESULT {"op":"sync-summary",...}.
# Untrusted volumes (VOLSD_UNTRUSTED: back from an instance under the recycle policy, or adopted) are
# rebuilt from the bucket: everything on them is removed first (their own .volsd markers included) and
# the mount root reset to root:root 0755, then the full tree is synced. Nothing they held survives:
# not a file with forged size and time, a mode, an owner, a setuid bit, a device node or a FIFO.
# Growth: before a volume is synced, its XFS file system is grown (xfs_growfs) when its block device
# is larger (after an EBS ModifyVolume); then the whole tree must fit the file system (95% of it) or the
# volume is refused untouched (code no-space, exit 17 in its result).
# Exit codes: 0 every volume ok (or nothing to sync); 8 a volume failed; 9 a path escape was found;
# 14 VOLSD_VOLUME_ID is not mounted here; others in volsd-lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=volsd-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/volsd-lib.sh" # volsd:include

volsd_init sync
volsd_require_tools aws find realpath flock awk readlink lsblk mktemp
bucket=${VOLSD_BUCKET:-}
prefix=${VOLSD_PREFIX-live/}
generation=${VOLSD_GENERATION:-}
only=${VOLSD_VOLUME_ID:-}
endpoint=${VOLSD_S3_ENDPOINT:-}
region=${VOLSD_REGION:-}
concurrency=${VOLSD_SYNC_CONCURRENCY:-4}
only_behind=${VOLSD_ONLY_BEHIND:-false}
max_object_bytes=${VOLSD_MAX_OBJECT_BYTES:-1073741824}
untrusted=${VOLSD_UNTRUSTED:-}
volsd_check VOLSD_BUCKET "$bucket" '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
volsd_check VOLSD_PREFIX "$prefix" '^([A-Za-z0-9_][A-Za-z0-9._=+-]*/){0,16}$'
volsd_check VOLSD_GENERATION "$generation" '^[0-9]{1,15}$'
[[ -z $only ]] || volsd_check_volume_id "$only"
[[ -z $endpoint ]] || volsd_check VOLSD_S3_ENDPOINT "$endpoint" '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$'
[[ -z $region ]] || volsd_check VOLSD_REGION "$region" '^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$'
volsd_check VOLSD_SYNC_CONCURRENCY "$concurrency" '^[1-9][0-9]?$'
volsd_check VOLSD_ONLY_BEHIND "$only_behind" '^(true|false)$'
volsd_check VOLSD_MAX_OBJECT_BYTES "$max_object_bytes" '^[1-9][0-9]{0,15}$'
volsd_check VOLSD_UNTRUSTED "$untrusted" '^(vol-([0-9a-f]{8}|[0-9a-f]{17})( vol-([0-9a-f]{8}|[0-9a-f]{17}))*)?$'
generation=$((10#$generation))

aws_args=()
[[ -z $endpoint ]] || aws_args+=(--endpoint-url "$endpoint")
[[ -z $region ]] || aws_args+=(--region "$region")

mkdir -p "$R/tmp"
work=$(mktemp -d "$R/tmp/volsd-sync.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# --- The volumes to sync: "volumeId mountPath" pairs, still mounted with their own device. --------
volumes=()
skipped_results=()
if [[ -n $only ]]; then
  device=$(volsd_find_device "$only") || device=''
  [[ -n $device ]] || volsd_fail "$VOLSD_EXIT_NOT_MOUNTED" not-mounted "$only is not attached to this host"
  mount_path=$(volsd_mounts_of "$device" | awk 'NR == 1')
  [[ -n $mount_path ]] || volsd_fail "$VOLSD_EXIT_NOT_MOUNTED" not-mounted "$only is not mounted on this host"
  volumes+=("$only $mount_path")
else
  for record in "$R"/etc/volsd/mounts.d/vol-*; do
    [[ -f $record ]] || continue
    volume=${record##*/}
    mount_path=''
    read -r mount_path <"$record" || true
    reason=''
    if [[ ! $volume =~ $VOLSD_RE_VOLUME_ID || ! $mount_path =~ $VOLSD_RE_MOUNT_PATH ]]; then
      reason='malformed record'
    elif ! device=$(volsd_find_device "$volume"); then
      reason='not attached'
    elif [[ $(volsd_source_at "$mount_path") != "$device" ]]; then
      reason="not mounted at $mount_path"
    fi
    if [[ -n $reason ]]; then
      volsd_log "skipping $volume: $reason"
      skipped_results+=("$(volsd_json op '"sync"' volumeId "$(volsd_json_str "$volume")" status '"skipped"' \
        reason "$(volsd_json_str "$reason")")")
      continue
    fi
    volumes+=("$volume $mount_path")
  done
fi

# --- One listing, classified: the keys to refuse become exclusions of every volume's sync. ---------
# The classifier reads the JSON the AWS CLI prints for `Contents[].[Size,ETag,Key]` byte-wise: per object
# a line with its size, a line with its ETag, then a line with its key (JSON-escaped). Per valid key it
# writes `ETAG<TAB>PATH` to etagfile (the ETag as the listing's JSON string, PATH below the prefix).
# Per refused or skipped key it prints: reason, the key still JSON-escaped (for the report), an
# exclusion pattern for the AWS CLI, and for `..` keys the relative path (for the tripwire).
# The pattern matches exactly the refused key and no other. The CLI joins it to the sync root
# (os.path.join: a leading / would drop the root, so it is written [/]) and matches with Python's
# fnmatch, where only * ? and [ are special and ? or * also match /. So * ? [ become the one-character
# classes [*] [?] [[], a control character is written as itself in a class ([<BEL>]), and NUL, which
# no argv can carry, becomes [!<U+0001>-<U+D7FF><U+E000>-<U+10FFFF>]: a class that holds only NUL and
# the lone surrogates, characters every key holding them is refused for. The pattern is printed with
# its control characters as \xHH and backslashes doubled (printf %b restores them), as it may hold the
# separator or a newline. (Evidence and the rejected `?`: docs/decisions.md.)
read -r -d '' classifier <<'AWK' || true
function hexval(h,    i, v) {
  v = 0
  for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
  return v
}
function pattern(rel,    i, ch, out) {
  out = ""
  for (i = 1; i <= length(rel); i++) {
    ch = substr(rel, i, 1)
    if (ch == "*" || ch == "?" || ch == "[") out = out "[" ch "]"
    else if (ch == "\\") out = out "\\\\"
    else if (ch == nul || ch == surrogate) out = out nulclass
    else if (ch in ord) out = out sprintf("[\\x%02x]", ord[ch])
    else if (i == 1 && ch == "/") out = out "[/]"
    else out = out ch
  }
  return out
}
BEGIN {
  sep = "\037"; total = 0; plen = length(prefix)
  # Stand-ins for the characters no argv can carry: bytes that valid UTF-8 never holds.
  nul = "\377"; surrogate = "\376"
  nulclass = "[!\\x01-\355\237\277\356\200\200-\364\217\277\277]"
  for (c = 1; c < 32; c++) ord[sprintf("%c", c)] = c
  ord["\177"] = 127
  escaped["b"] = "\b"; escaped["f"] = "\f"; escaped["n"] = "\n"; escaped["r"] = "\r"; escaped["t"] = "\t"
}
{
  line = $0
  sub(/^[ \t]+/, "", line)
  sub(/,$/, "", line)
  if (line ~ /^[0-9]+$/) { size = line + 0; want_etag = 1; next }
  if (want_etag) { etag = line; want_etag = 0; next }
  if (line !~ /^".*"$/) next
  json = substr(line, 2, length(line) - 2)
  total++
  s = json; dec = ""; ctl = 0; bs = 0; odd = 0
  while ((i = index(s, "\\")) > 0) {
    dec = dec substr(s, 1, i - 1)
    c = substr(s, i + 1, 1)
    if (c == "u") {
      code = hexval(substr(s, i + 2, 4))
      if (code == 0) { ctl = 1; dec = dec nul }
      else if (code < 32 || code == 127) { ctl = 1; dec = dec sprintf("%c", code) }
      else { odd = 1; dec = dec surrogate }
      s = substr(s, i + 6)
      continue
    }
    if (c == "\"") dec = dec "\""
    else if (c == "/") dec = dec "/"
    else if (c == "\\") { dec = dec "\\"; bs = 1 }
    else if (c in escaped) { dec = dec escaped[c]; ctl = 1 }
    else { dec = dec nul; ctl = 1 }
    s = substr(s, i + 2)
  }
  dec = dec s
  if (dec ~ /[\001-\037\177]/) ctl = 1
  if (substr(dec, 1, plen) != prefix) next
  rel = substr(dec, plen + 1)
  body = rel
  marker = (rel == "" || rel ~ /\/$/)
  if (marker) sub(/\/$/, "", body)
  reason = ""; parent = 0
  if (ctl) reason = "control-character"
  else if (odd) reason = "unsupported-character"
  else if (bs) reason = "backslash"
  else if (substr(body, 1, 1) == "/") reason = "absolute"
  else if (length(dec) > 1024) reason = "too-long"
  if (body != "") {
    n = split(body, seg, "/")
    for (k = 1; k <= n; k++) {
      if (seg[k] == "..") { parent = 1; if (reason == "" || reason == "absolute") reason = "parent-segment" }
      else if (reason != "") continue
      else if (seg[k] == ".") reason = "dot-segment"
      else if (seg[k] == "") reason = "empty-segment"
      else if (length(seg[k]) > 255) reason = "too-long"
    }
    if (reason == "" && seg[1] ~ /^\.volsd/) reason = "reserved"
  }
  if (reason == "" && marker) reason = "directory-marker"
  if (reason == "" && size > maxbytes) reason = "too-large"
  if (reason == "") bytes += size
  size = 0
  if (reason == "") { print etag "\t" rel > etagfile; next }
  print reason sep json sep pattern(rel) sep ((parent && !ctl && !odd) ? rel : "")
}
END { print "total" sep total sep bytes + 0 }
AWK

listing=$work/listing.json
failed_listing=false
if ((${#volumes[@]} == 0)); then
  # Nothing to sync here (an instance before its mount): spare the bucket a listing.
  printf 'null\n' >"$listing"
elif ! aws "${aws_args[@]}" s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix" \
  --query 'Contents[].[Size,ETag,Key]' --output json >"$listing" 2>"$work/listing.err"; then
  volsd_log "listing s3://$bucket/$prefix failed: $(tail -c 2000 "$work/listing.err")"
  failed_listing=true
fi

total_keys=0
tree_bytes=0
markers=0
rejected=()
excludes=(--exclude '.volsd*')
parent_rels=()
if ! $failed_listing; then
  while IFS=$'\037' read -r reason json glob rel; do
    if [[ $reason == total ]]; then
      total_keys=$json
      tree_bytes=$glob
      continue
    fi
    if [[ $reason == directory-marker ]]; then
      markers=$((markers + 1))
    else
      rejected+=("$(volsd_json key "\"$json\"" reason "\"$reason\"")")
    fi
    printf -v glob '%b' "$glob"
    excludes+=(--exclude "$glob")
    [[ -z $rel ]] || parent_rels+=("$rel")
  done < <(LC_ALL=C awk -v prefix="$prefix" -v maxbytes="$max_object_bytes" -v etagfile="$work/etags.listed" \
    "$classifier" "$listing")
fi
: >>"$work/etags.listed"
LC_ALL=C sort -o "$work/etags" "$work/etags.listed"
# Each refused key costs one --exclude; past this many the command line is no place for them.
readonly max_excludes=2000
# The exit status of a per-volume sync whose volume was taken while it waited (private to this script).
readonly taken_rc=64
too_many_refused=false
((${#excludes[@]} / 2 <= max_excludes)) || too_many_refused=true
for ((i = 0; i < ${#rejected[@]} && i < 20; i++)); do
  printf 'VOLSD_REJECTED %s\n' "${rejected[i]}"
done
((${#rejected[@]} == 0)) || volsd_log "refused ${#rejected[@]} unsafe key(s) under s3://$bucket/$prefix"

# --- The per-volume sync. ----------------------------------------------------------------------------

# escaping_symlinks ROOT REALROOT: the symlinks under ROOT that resolve outside REALROOT.
escaping_symlinks() {
  local link target
  while IFS= read -r -d '' link; do
    target=$(realpath -m -- "$link")
    [[ $target == "$2" || $target == "$2"/* ]] || printf '%s\n' "${link#"$1"/}"
  done < <(find "$1/" -type l -print0)
}

# files_beside ROOT REALROOT STAMP: regular files changed after STAMP directly in a parent directory
# of the mount root, where a `../name` key would land.
files_beside() {
  local dir=${1%/*} real_parent=${2%/*}
  while [[ -n $dir && $dir != "$R" ]]; do
    find "$dir" -mindepth 1 -maxdepth 1 -type f -cnewer "$3" -print 2>/dev/null || true
    dir=${dir%/*}
  done
  find "${dir:-/}" -mindepth 1 -maxdepth 1 -type f -cnewer "$3" -print 2>/dev/null || true
  if [[ $real_parent != "${1%/*}" ]]; then
    find "${real_parent:-/}" -mindepth 1 -maxdepth 1 -type f -cnewer "$3" -print 2>/dev/null || true
  fi
}

# grow_filesystem ROOT DEVICE: grows the volume's XFS file system to its block device when the device is
# larger (EBS ModifyVolume: a size increase is usable once the modification is `optimizing`; the EBS User
# Guide's "Extend the file system" step). Online and idempotent. A file system that cannot grow is only
# logged: the space check below then refuses what does not fit.
grow_filesystem() {
  local root=$1 name sectors fs out
  name=$(readlink -f -- "$R$2") || return 0
  name=${name##*/}
  [[ -r $R/sys/block/$name/size ]] || return 0
  read -r sectors <"$R/sys/block/$name/size" || return 0
  fs=$(df -B1 --output=size -- "$root" 2>/dev/null | awk 'NR == 2 { print $1 }') || return 0
  [[ $sectors =~ ^[0-9]+$ && $fs =~ ^[0-9]+$ ]] && ((sectors * 512 > fs)) || return 0
  if ! command -v xfs_growfs >/dev/null; then
    volsd_log "the device of $mnt ($((sectors * 512)) bytes) is larger than its file system ($fs bytes) but xfs_growfs is missing"
  elif out=$(xfs_growfs -d "$root" 2>&1); then
    volsd_log "xfs_growfs $mnt: $(tail -n 1 <<<"$out")"
  else
    volsd_log "xfs_growfs $mnt failed: $(tail -c 300 <<<"$out")"
  fi
}

# sync_volume VOLUME MOUNT_PATH: prints the volume's result JSON; exits 0, 8 (failed) or 9 (escape).
sync_volume() {
  local volume=$1 mnt=$2 device root realroot stamp rc out escapes files bytes target before after rel fs_bytes known
  VOLSD_VOLUME=$volume
  volsd_lock "$volume" 600
  root=$R$mnt
  fail() { # EXIT CODE MESSAGE
    volsd_log "error: $3"
    volsd_json op '"sync"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mnt")" \
      status '"failed"' code "$(volsd_json_str "$2")" exitCode "$1" error "$(volsd_json_str "$3")" \
      generation "$(volsd_read_generation "$mnt")" rejectedKeys "${#rejected[@]}"
    echo
    exit "$1"
  }
  # The lock may have waited for an unmount: look again.
  device=$(volsd_find_device "$volume") || device=''
  if [[ -z $device || $(volsd_source_at "$mnt") != "$device" ]]; then
    if [[ -z $only ]]; then
      # Taken while this sync waited for its lock (an acquire unmounted and detached it): no failure of the
      # push; the acquire brings the volume current on its new host (BringCurrent, the boot unit's check).
      volsd_log "skipping $volume: taken while waiting for its lock"
      volsd_json op '"sync"' volumeId "$(volsd_json_str "$volume")" status '"skipped"' \
        reason "$(volsd_json_str "taken: no longer mounted at $mnt")"
      echo
      exit "$taken_rc"
    fi
    fail "$VOLSD_EXIT_SYNC_FAILED" not-mounted "$volume is no longer mounted at $mnt"
  fi
  if $failed_listing; then
    fail "$VOLSD_EXIT_SYNC_FAILED" listing-failed "cannot list s3://$bucket/$prefix"
  fi
  if $too_many_refused; then
    fail "$VOLSD_EXIT_SYNC_FAILED" too-many-unsafe-keys \
      "more than $max_excludes unsafe keys under s3://$bucket/$prefix: remove them from the bucket"
  fi
  if [[ " $untrusted " == *" $volume "* ]]; then
    # Before anything reads the tree: its symlinks and its generation marker are the holder's too.
    volsd_log "$volume is untrusted: emptying $mnt before a full sync"
    if ! out=$(find "$root/" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} + 2>&1) ||
      ! out=$(chown 0:0 -- "$root/" 2>&1 && chmod 0755 -- "$root/" 2>&1); then
      fail "$VOLSD_EXIT_SYNC_FAILED" wipe-failed "cannot empty untrusted $mnt: ${out:0:300}"
    fi
  fi
  realroot=$(realpath -e -- "$root")
  escapes=$(escaping_symlinks "$root" "$realroot")
  [[ -z $escapes ]] || fail "$VOLSD_EXIT_PATH_ESCAPE" path-escape \
    "refusing to sync: symlinks lead outside the mount root: $(head -c 500 <<<"$escapes")"
  grow_filesystem "$root" "$device"
  before=$(volsd_read_generation "$mnt")
  if [[ $only_behind == true ]] && ((before >= generation)); then
    volsd_log "$mnt is at generation $before, not behind $generation: skipped"
    volsd_json op '"sync"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mnt")" \
      status '"current"' generation "$before" previousGeneration "$before" filesChanged 0 bytesChanged 0
    echo
    exit 0
  fi
  # The whole tree must fit before anything moves: a sync that meets a full file system half-way leaves
  # a tree of neither generation. 5% stays free for XFS's metadata and the CLI's temporary files.
  fs_bytes=$(df -B1 --output=size -- "$root" 2>/dev/null | awk 'NR == 2 { print $1 }') || fs_bytes=''
  if [[ $fs_bytes =~ ^[0-9]+$ ]] && ((tree_bytes * 100 > fs_bytes * 95)); then
    fail "$VOLSD_EXIT_NO_SPACE" no-space \
      "the content ($tree_bytes bytes) does not fit the file system of $mnt ($fs_bytes bytes, 95% usable): nothing synced"
  fi
  # Same-size versions written within one second share size and LastModified: --exact-timestamps cannot
  # tell them apart, so a sync that listed the first kept it for good. <mount>/.volsd/etags records the
  # ETag of each key as the last successful sync listed it; a local file whose key's ETag differs (or that
  # no record covers) gets mtime 0, which no LastModified matches, so this sync downloads it again.
  known=$root/.volsd/etags
  [[ -f $known && ! -L $known ]] || known=/dev/null
  while IFS= read -r rel; do
    if [[ -f $root/$rel && ! -L $root/$rel ]]; then touch -m -d @0 -- "$root/$rel" || true; fi
  done < <(LC_ALL=C comm -13 -- "$known" "$work/etags" | cut -f 2-)
  stamp=$work/stamp.$volume
  touch "$stamp" "$stamp.tick"
  # File times advance in clock ticks: wait for the next one, or a write right after the stamp
  # could carry the stamp's own time and escape the -cnewer checks below.
  while [[ ! $stamp.tick -nt $stamp ]]; do
    sleep 0.005
    touch "$stamp.tick"
  done
  rc=0
  # --exact-timestamps: by default the CLI skips a same-size object unless the local copy is newer,
  # so an edit that keeps the size would never arrive. Downloads take the object's LastModified as
  # their mtime, so any new version differs.
  aws "${aws_args[@]}" s3 sync "s3://$bucket/$prefix" "$root/" --delete --exact-timestamps --only-show-errors \
    --no-progress "${excludes[@]}" >"$work/sync.$volume.log" 2>&1 || rc=$?
  out=$(tail -c 1500 "$work/sync.$volume.log")
  [[ -z $out ]] || volsd_log "aws s3 sync: $out"
  # The tripwire, whatever the sync's outcome.
  escapes=$(
    escaping_symlinks "$root" "$realroot"
    files_beside "$root" "$realroot" "$stamp"
  )
  for rel in "${parent_rels[@]}"; do
    target=$(realpath -m -- "$root/$rel")
    if [[ $target != "$realroot"/* && -e $target && -n $(find "$target" -maxdepth 0 -cnewer "$stamp" 2>/dev/null) ]]; then
      escapes+=$'\n'$target
    fi
  done
  [[ -z $escapes ]] || fail "$VOLSD_EXIT_PATH_ESCAPE" path-escape \
    "written or linked outside the mount root: $(head -c 500 <<<"$escapes")"
  ((rc == 0)) || fail "$VOLSD_EXIT_SYNC_FAILED" sync-failed "aws s3 sync exited $rc: ${out:0:500}"
  read -r files bytes < <(find "$root/" -path "$root/.volsd*" -prune -o -type f -cnewer "$stamp" -printf '%s\n' |
    awk '{ n++; b += $1 } END { printf "%d %d\n", n, b }')
  after=$((generation > before ? generation : before))
  mkdir -p "$root/.volsd"
  cp -- "$work/etags" "$root/.volsd/etags.tmp"
  mv -f -- "$root/.volsd/etags.tmp" "$root/.volsd/etags"
  printf '%s\n' "$after" >"$root/.volsd/generation.tmp"
  mv -f -- "$root/.volsd/generation.tmp" "$root/.volsd/generation"
  volsd_log "synced $mnt to generation $after ($files file(s), $bytes byte(s) changed)"
  volsd_json op '"sync"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mnt")" \
    status '"ok"' generation "$after" previousGeneration "$before" filesChanged "$files" bytesChanged "$bytes" \
    rejectedKeys "${#rejected[@]}"
  echo
}

for i in "${!volumes[@]}"; do
  while (($(jobs -rp | wc -l) >= concurrency)); do
    wait -n || true
  done
  read -r volume mount_path <<<"${volumes[i]}"
  (
    trap 'echo $? >"$work/rc.$i"' EXIT
    sync_volume "$volume" "$mount_path" >"$work/result.$i"
  ) &
done
wait || true

ok=0
failed=0
taken=0
status=0
for i in "${!volumes[@]}"; do
  read -r volume mount_path <<<"${volumes[i]}"
  rc=$(cat "$work/rc.$i" 2>/dev/null || echo 1)
  result=$(cat "$work/result.$i" 2>/dev/null || true)
  # A failure inside volsd-lib.sh (a lock timeout) prints its own VOLSD_RESULT line.
  result=${result#VOLSD_RESULT }
  if [[ -z $result ]]; then
    result=$(volsd_json op '"sync"' volumeId "$(volsd_json_str "$volume")" mountPath "$(volsd_json_str "$mount_path")" \
      status '"failed"' code '"unexpected"' exitCode "$rc" error '"unexpected failure, see stderr"')
    ((rc != 0)) || rc=$VOLSD_EXIT_SYNC_FAILED
  fi
  printf 'VOLSD_RESULT %s\n' "$result"
  if ((rc == 0)); then
    ok=$((ok + 1))
  elif ((rc == taken_rc)); then
    taken=$((taken + 1))
  else
    failed=$((failed + 1))
    if ((rc == VOLSD_EXIT_PATH_ESCAPE)); then
      status=$VOLSD_EXIT_PATH_ESCAPE
    elif ((status == 0)); then
      status=$VOLSD_EXIT_SYNC_FAILED
    fi
  fi
done
for result in "${skipped_results[@]}"; do
  printf 'VOLSD_RESULT %s\n' "$result"
done
if $failed_listing && ((${#volumes[@]} == 0)); then
  status=$VOLSD_EXIT_SYNC_FAILED
fi
VOLSD_VOLUME=''
volsd_result op '"sync-summary"' generation "$generation" volumes "${#volumes[@]}" ok "$ok" failed "$failed" \
  skipped "$((${#skipped_results[@]} + taken))" keys "$total_keys" directoryMarkers "$markers" rejectedKeys "${#rejected[@]}" \
  listingFailed "$failed_listing" status "$( ((status == 0)) && echo '"ok"' || echo '"failed"')"
exit "$status"
