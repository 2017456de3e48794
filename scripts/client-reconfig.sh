#!/usr/bin/env bash
# sentinel-switch hook: Redis Sentinel's `client-reconfig-script`.
#
# Sentinel runs it (execve, no shell) on EVERY sentinel at each failover as
#   client-reconfig.sh <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>
# and it POSTs that event as JSON to "$SENTINEL_SWITCH_URL/v1/failover". The service does not
# trust the event: it asks the Sentinels and ROLE itself, so this script only has to deliver it.
#
# Why pure bash: the Bitnami sentinel image has bash, coreutils and openssl but no curl and no
# wget, so HTTP is spoken over bash's /dev/tcp (http) or `openssl s_client` (https).
# External commands used: timeout and sleep (coreutils); openssl only for https URLs.
#
# Configuration (environment; Sentinel's environment is inherited by the script):
#   SENTINEL_SWITCH_URL              http://host:port[/prefix] or https://host[:port][/prefix]
#   SENTINEL_SWITCH_TOKEN_FILE       file holding the bearer token (wins over the variable below)
#   SENTINEL_SWITCH_TOKEN            the bearer token itself
#   SENTINEL_SWITCH_ATTEMPT_TIMEOUT  seconds one HTTP attempt may take (default 5)
#   SENTINEL_SWITCH_RETRY_SECONDS    seconds to keep retrying transient failures (default 45)
#   SENTINEL_SWITCH_CA_FILE          https only: CA bundle to verify the server with
#                                    (default: the system trust store)
#
# Exit codes follow what Sentinel does with them (see the Sentinel facts doc):
#   0  delivered (2xx).
#   1  transient failure that outlasted SENTINEL_SWITCH_RETRY_SECONDS: Sentinel runs the script
#      again after 30 s, 60 s, ... so we retry briefly ourselves first (a blip must not cost 30 s).
#   2  permanent: bad arguments, bad configuration, an untrusted TLS certificate, a 4xx answer
#      (or a 3xx: redirects are not followed, the URL is wrong). Sentinel never retries it, which
#      is right, as a second identical request would get the same answer.
# Retried within the window: connection errors, attempt timeouts, 5xx, non-HTTP answers, and
# 408/429, the two 4xx that say "later".
#
# Every stderr line starts with "sentinel-switch hook:" and names the master set, so a
# sentinel's log can be grepped per failover. The token is never printed.

set -u
self=${BASH_SOURCE[0]}
# Byte semantics for ${#var} (Content-Length), character classes and regexes.
LC_ALL=C

# One HTTP exchange; the script runs itself as `client-reconfig.sh --attempt ...` under `timeout`
# (see attempt() below). It prints the raw response on stdout, or a reason line and exits:
#   10 connect failed   11 tls failed
attempt_main() {
  local host=$1 port=$2 scheme=$3 sni=$4 ca_file=$5 line n=0 err rc
  if [[ $scheme == http ]]; then
    # exec inside a group keeps fd 3 open in this shell; bash's connect error (e.g.
    # "connect: Connection refused") goes to stdout, which is all the parent reads on exit 10.
    { exec 3<>"/dev/tcp/$host/$port"; } 2>&1 || exit 10
    printf '%s' "$SS_HOOK_REQUEST" >&3 || { printf 'write failed\n'; exit 10; }
    while IFS= read -r -u 3 line || [[ -n $line ]]; do
      printf '%s\n' "$line"
      ((++n > 400)) && break # a sane answer is a few lines; never buffer an endless stream
    done
    exit 0
  fi
  # https: s_client -quiet never closes on stdin EOF, it waits for the server to close, which it
  # does after the response (Connection: close). Verification failures must not pass silently,
  # and the name (or IP) in the URL must be the one the certificate is for.
  local args=(s_client -quiet -connect "$host:$port" -servername "$sni" -verify_return_error)
  if [[ $sni =~ ^[0-9.]+$ || $sni == *:* ]]; then args+=(-verify_ip "$sni"); else args+=(-verify_hostname "$sni"); fi
  [[ -n $ca_file ]] && args+=(-CAfile "$ca_file")
  exec 5>&1
  # The response goes straight to our stdout via fd 5; openssl's diagnostics are captured.
  err=$(printf '%s' "$SS_HOOK_REQUEST" | openssl "${args[@]}" 2>&1 >&5)
  rc=$?
  if ((rc != 0)); then
    # Say why: a "verify error:num=18:self-signed certificate" line if any, else the last line
    # that mentions an error.
    local reason="openssl s_client exited $rc" verify=
    # (Parameter expansion, not a here-string: those may need a writable /tmp, and the chart
    # runs the sentinel with a read-only root filesystem.)
    while [[ -n $err ]]; do
      line=${err%%$'\n'*}
      [[ $line == *error* ]] && reason=$line
      [[ $line == *'verify error'* && -z $verify ]] && verify=$line
      [[ $err == *$'\n'* ]] && err=${err#*$'\n'} || err=
    done
    [[ -n $verify ]] && reason=$verify
    printf '\n%s\n' "$reason"
    exit 11
  fi
  exit 0
}
if [[ ${1:-} == --attempt ]]; then
  shift
  attempt_main "$@"
fi

PREFIX="sentinel-switch hook: masterSet=${1:-?}:"
say() { printf '%s %s\n' "$PREFIX" "$*" >&2; }
fail_permanent() { say "$* (exit 2, not retried)"; exit 2; }

# Response text is untrusted: keep one line, printable ASCII, bounded length.
one_line() {
  local s=${1//[$'\r\n\t']/ }
  s=${s//[^[:print:]]/?}
  ((${#s} > 300)) && s="${s:0:300}..."
  printf '%s' "$s"
}

# Wall-clock microseconds for the retry window (a clock step only stretches or shortens it).
# EPOCHREALTIME is bash >= 5.0 (the images have 5.2); its decimal separator follows the locale,
# so keep the digits only.
now_us() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local t=${EPOCHREALTIME//[!0-9]/}
    printf '%s' "$((10#$t))"
  else
    printf '%s' "$((SECONDS * 1000000))"
  fi
}

# "1.5" -> 1500. Returns 1 when the value is not a plain non-negative decimal number.
seconds_to_ms() {
  [[ $1 =~ ^([0-9]{1,6})(\.([0-9]{1,3})[0-9]*)?$ ]] || return 1
  local frac=${BASH_REMATCH[3]}000
  printf '%s' "$((10#${BASH_REMATCH[1]} * 1000 + 10#${frac:0:3}))"
}
ms_to_seconds() { printf '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"; }

# ---------------------------------------------------------------------------------------------
# Arguments. They come from Sentinel, but a broken argument must never become broken JSON:
# anything implausible is refused with exit 2.
# ---------------------------------------------------------------------------------------------
(($# == 7)) || fail_permanent "expected 7 arguments (<master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>), got $#"
master_set=$1 role=$2 state=$3 from_host=$4 from_port=$5 to_host=$6 to_port=$7

# Sentinel accepts any master name without whitespace; printable ASCII is all we need to carry.
[[ $master_set =~ ^[!-~]{1,200}$ ]] || fail_permanent "master name is not 1-200 printable ASCII characters"
# role is leader|observer and state is start (older docs: failover); the service decides what
# they mean, so accept any short lowercase word here rather than break on a future Sentinel.
[[ $role =~ ^[a-z][a-z_-]{0,31}$ ]] || fail_permanent "role '$(one_line "$role")' is not a plausible Sentinel role"
[[ $state =~ ^[a-z][a-z_-]{0,31}$ ]] || fail_permanent "state '$(one_line "$state")' is not a plausible Sentinel state"

# IPv4, IPv6 or a DNS name (announce-hostnames yes hands out pod FQDNs).
valid_host() {
  local h=$1
  ((${#h} >= 1 && ${#h} <= 253)) || return 1
  [[ $h =~ ^[0-9A-Fa-f:.]+$ && $h == *:* ]] && return 0
  [[ $h =~ ^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$ ]]
}
# A JSON number: decimal, no sign, no leading zero, 1..65535.
valid_port() { [[ $1 =~ ^[1-9][0-9]{0,4}$ ]] && (($1 <= 65535)); }

valid_host "$from_host" || fail_permanent "from-ip '$(one_line "$from_host")' is not an IP address or host name"
valid_port "$from_port" || fail_permanent "from-port '$(one_line "$from_port")' is not a port number"
valid_host "$to_host" || fail_permanent "to-ip '$(one_line "$to_host")' is not an IP address or host name"
valid_port "$to_port" || fail_permanent "to-port '$(one_line "$to_port")' is not a port number"

# After the checks above only the master name can hold JSON metacharacters (" and \); control
# characters were refused, so escaping these two is complete.
json_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
body="{\"masterSet\":$(json_string "$master_set"),\"role\":$(json_string "$role"),\"state\":$(json_string "$state"),\"from\":{\"host\":$(json_string "$from_host"),\"port\":$from_port},\"to\":{\"host\":$(json_string "$to_host"),\"port\":$to_port}}"
event="$role $state $from_host:$from_port -> $to_host:$to_port"

# ---------------------------------------------------------------------------------------------
# Configuration. Anything missing or malformed is permanent: retrying cannot fix it.
# ---------------------------------------------------------------------------------------------
url=${SENTINEL_SWITCH_URL:-}
[[ -n $url ]] || fail_permanent "SENTINEL_SWITCH_URL is not set ($event not delivered)"
# scheme://host[:port][/prefix]; host may be [IPv6].
if [[ ! $url =~ ^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:([0-9]{1,5}))?(/[A-Za-z0-9._~%/-]*)?$ ]]; then
  fail_permanent "SENTINEL_SWITCH_URL '$(one_line "$url")' is not http(s)://host[:port][/prefix]"
fi
scheme=${BASH_REMATCH[1]} url_host=${BASH_REMATCH[2]} url_port=${BASH_REMATCH[4]} url_prefix=${BASH_REMATCH[5]}
if [[ -z $url_port ]]; then
  [[ $scheme == https ]] && url_port=443 || url_port=80
  host_header=$url_host
else
  valid_port "$url_port" || fail_permanent "SENTINEL_SWITCH_URL port '$url_port' is not a port number"
  host_header="$url_host:$url_port"
fi
connect_host=${url_host#[}
connect_host=${connect_host%]}
url_prefix=${url_prefix%/}
request_path="$url_prefix/v1/failover"

if [[ -n ${SENTINEL_SWITCH_TOKEN_FILE:-} ]]; then
  if [[ ! -e $SENTINEL_SWITCH_TOKEN_FILE || -d $SENTINEL_SWITCH_TOKEN_FILE ]]; then
    fail_permanent "SENTINEL_SWITCH_TOKEN_FILE '$(one_line "$SENTINEL_SWITCH_TOKEN_FILE")' is not a file"
  fi
  # A Secret volume is 0440 root:<fsGroup>: without the pod's fsGroup the sentinel user cannot read it.
  [[ -r $SENTINEL_SWITCH_TOKEN_FILE ]] ||
    fail_permanent "SENTINEL_SWITCH_TOKEN_FILE '$(one_line "$SENTINEL_SWITCH_TOKEN_FILE")' is not readable by uid $EUID: set the pod's fsGroup"
  # $(<file) strips trailing newlines; the pattern below also drops trailing spaces/CR that an
  # editor or `kubectl create secret --from-file` may leave behind.
  token=$(<"$SENTINEL_SWITCH_TOKEN_FILE")
  token_source="SENTINEL_SWITCH_TOKEN_FILE"
else
  token=${SENTINEL_SWITCH_TOKEN:-}
  token_source="SENTINEL_SWITCH_TOKEN"
fi
token=${token%"${token##*[![:space:]]}"}
[[ -n $token ]] || fail_permanent "no token: set SENTINEL_SWITCH_TOKEN_FILE or SENTINEL_SWITCH_TOKEN ($event not delivered)"
# A token with spaces or control characters would corrupt the header (or inject new ones).
[[ $token =~ ^[!-~]+$ ]] || fail_permanent "the token from $token_source holds whitespace or non-ASCII characters"

attempt_ms=$(seconds_to_ms "${SENTINEL_SWITCH_ATTEMPT_TIMEOUT:-5}") && ((attempt_ms >= 100)) ||
  fail_permanent "SENTINEL_SWITCH_ATTEMPT_TIMEOUT '$(one_line "${SENTINEL_SWITCH_ATTEMPT_TIMEOUT:-}")' is not a number of seconds >= 0.1"
retry_ms=$(seconds_to_ms "${SENTINEL_SWITCH_RETRY_SECONDS:-45}") ||
  fail_permanent "SENTINEL_SWITCH_RETRY_SECONDS '$(one_line "${SENTINEL_SWITCH_RETRY_SECONDS:-}")' is not a number of seconds"

ca_file=${SENTINEL_SWITCH_CA_FILE:-}
command -v timeout >/dev/null || fail_permanent "'timeout' (coreutils) is not on PATH"
command -v sleep >/dev/null || fail_permanent "'sleep' (coreutils) is not on PATH"
if [[ $scheme == https ]]; then
  command -v openssl >/dev/null || fail_permanent "https needs 'openssl' on PATH"
  [[ -z $ca_file || -r $ca_file ]] || fail_permanent "SENTINEL_SWITCH_CA_FILE '$(one_line "$ca_file")' is not a readable file"
fi

# HTTP/1.0 + Connection: close: the server answers with a plain body and closes, so "read until
# EOF" is the whole response parser (no chunked encoding, no keep-alive).
request="POST $request_path HTTP/1.0"$'\r\n'
request+="Host: $host_header"$'\r\n'
request+="Authorization: Bearer $token"$'\r\n'
request+="Content-Type: application/json"$'\r\n'
request+="Content-Length: ${#body}"$'\r\n'
request+="User-Agent: sentinel-switch-hook/1"$'\r\n'
request+="Connection: close"$'\r\n'$'\r\n'
request+=$body
unset token

# /dev/tcp wants a bare IPv6 address; s_client's -connect wants it bracketed ([v6]:port).
sni_host=$connect_host
connect_target=$connect_host
[[ $scheme == https && $connect_host == *:* ]] && connect_target="[$connect_host]"

# Sets: status (HTTP code or ""), reason (one line), http_line.
attempt() {
  local budget_ms=$1 out rc
  # A child bash under `timeout`: /dev/tcp has no connect timeout, and a silent server would
  # otherwise hang us until Sentinel kills the script at 60 s. The request (with the token)
  # travels in the child's environment, not its argv, so it never shows in `ps`.
  out=$(SS_HOOK_REQUEST=$request timeout -k 1 "$(ms_to_seconds "$budget_ms")" \
    "$BASH" "$self" --attempt "$connect_target" "$url_port" "$scheme" "$sni_host" "$ca_file" 2>&1)
  rc=$?
  status= reason= response_body=
  case $rc in
    124 | 137) reason="no answer within $(ms_to_seconds "$budget_ms") s"; return ;;
    10) reason="connect to $host_header failed: $(connect_reason "$out")"; return ;;
    11) reason="tls to $host_header failed: $(one_line "${out##*$'\n'}")"
        # A certificate the CA does not vouch for will not start vouching on retry.
        [[ $out == *verify* || $out == *certificate* ]] && tls_permanent=1
        return ;;
    0) ;;
    *) reason="attempt exited $rc: $(one_line "${out:0:200}")"; return ;;
  esac
  # Status line, then headers up to the blank line, then the body.
  local first=${out%%$'\n'*}
  first=${first%$'\r'}
  if [[ ! $first =~ ^HTTP/[0-9.]+\ ([0-9]{3})(\ .*)?$ ]]; then
    reason="not an HTTP response: '$(one_line "${first:0:120}")'"
    return
  fi
  status=${BASH_REMATCH[1]}
  http_line="HTTP $status${BASH_REMATCH[2]}"
  if [[ $out == *$'\r\n\r\n'* ]]; then
    response_body=${out#*$'\r\n\r\n'}
  elif [[ $out == *$'\n\n'* ]]; then
    response_body=${out#*$'\n\n'}
  fi
  reason=$(one_line "$http_line")
}

# "bash: connect: Connection refused" / "bash: line 1: x: Name or service not known" -> the cause.
connect_reason() {
  local l=${1%%$'\n'*}
  l=${l##*: }
  one_line "${l:-connect failed}"
}

# The useful part of an error answer: Fastify-style {"error": ..., "message": ...}, else a snippet.
describe_error_body() {
  local b=$1 err= msg= str='"(([^"\\]|\\.)*)"'
  [[ $b =~ \"error\"[[:space:]]*:[[:space:]]*$str ]] && err=${BASH_REMATCH[1]}
  [[ $b =~ \"message\"[[:space:]]*:[[:space:]]*$str ]] && msg=${BASH_REMATCH[1]}
  if [[ -n $err || -n $msg ]]; then
    one_line "${err:+error: $err}${err:+${msg:+; }}${msg:+message: $msg}"
  elif [[ -n ${b//[[:space:]]/} ]]; then
    one_line "body: ${b:0:200}"
  fi
}

# ---------------------------------------------------------------------------------------------
# Deliver, retrying transient failures with a short, capped backoff inside the retry window.
# No attempt starts after the window, so a run lasts at most RETRY_SECONDS + ATTEMPT_TIMEOUT
# (50 s by default): under Sentinel's 60 s script timeout, which would SIGKILL us and count the
# run as failed.
# ---------------------------------------------------------------------------------------------
start_us=$(now_us)
deadline_us=$((start_us + retry_ms * 1000))
backoffs_ms=(200 500 1000 2000 4000)  # then stays at 4 s
tries=0
tls_permanent=0
while :; do
  tries=$((tries + 1))
  attempt "$attempt_ms"
  elapsed_ms=$((($(now_us) - start_us) / 1000))

  if [[ $status == 2?? ]]; then
    say "delivered $event: $reason (attempt $tries, ${elapsed_ms} ms)"
    exit 0
  fi
  if [[ $status == 4?? && $status != 408 && $status != 429 ]] || [[ $status == 3?? ]]; then
    detail=$(describe_error_body "$response_body")
    fail_permanent "$event rejected by $scheme://$host_header$request_path: $reason${detail:+ ($detail)}"
  fi
  if ((tls_permanent)); then
    fail_permanent "$event not delivered: $reason"
  fi
  [[ -n $status ]] && { detail=$(describe_error_body "$response_body"); reason+="${detail:+ ($detail)}"; }

  idx=$((tries - 1))
  ((idx >= ${#backoffs_ms[@]})) && idx=$((${#backoffs_ms[@]} - 1))
  wait_ms=${backoffs_ms[idx]}
  remaining_ms=$(((deadline_us - $(now_us)) / 1000))
  if ((remaining_ms <= 0)); then
    say "giving up on $event after $tries attempts in $(ms_to_seconds "$elapsed_ms") s: $reason (exit 1: Sentinel retries later)"
    exit 1
  fi
  ((wait_ms > remaining_ms)) && wait_ms=$remaining_ms
  say "attempt $tries for $event failed: $reason; retrying in $(ms_to_seconds "$wait_ms") s"
  sleep "$(ms_to_seconds "$wait_ms")"
done
