#!/usr/bin/env bash
# Starts or stops nginx as a TLS + bearer-token ingress in front of a KServe v2
# gRPC server (serve/ingress/nginx.conf.in; docs/scale-out.md). Carts then use
# url = "https://HOST:PORT", ca = the certificate, token = the token.
#
#   serve/ingress.sh start --listen ADDR:PORT --upstream ADDR:PORT --token-file F
#                          [--cert PEM --key PEM] [--state DIR]
#       without --cert/--key, makes a self-signed certificate for 127.0.0.1 and
#       localhost in the state dir (STATE/server.crt: give it to the carts as ca)
#   serve/ingress.sh stop [--state DIR]
#
# Needs nginx (Debian and Ubuntu package nginx, installed by scripts/bootstrap.sh) and,
# for the self-signed certificate, openssl. State defaults to out/ingress/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say()  { printf '\033[1;34m[ingress]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[ingress] error:\033[0m %s\n' "$*" >&2; exit 1; }

cmd="${1:-}"
[ -n "$cmd" ] || fail "usage: serve/ingress.sh start|stop [options] (see the header of serve/ingress.sh)"
shift
LISTEN="" UPSTREAM="" TOKEN_FILE="" CERT="" KEY="" STATE="$ROOT/out/ingress"
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN="$2"; shift 2 ;;
    --upstream) UPSTREAM="$2"; shift 2 ;;
    --token-file) TOKEN_FILE="$2"; shift 2 ;;
    --cert) CERT="$2"; shift 2 ;;
    --key) KEY="$2"; shift 2 ;;
    --state) STATE="$2"; shift 2 ;;
    *) fail "unknown argument $1 (see the header of serve/ingress.sh)" ;;
  esac
done

NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
stop() {
  if [ -f "$STATE/nginx.pid" ]; then
    kill "$(cat "$STATE/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$STATE/nginx.pid" ] || break; sleep 0.1; done
    rm -f "$STATE/nginx.pid"
  fi
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) fail "unknown command $cmd (start or stop)" ;;
esac

[ -x "$NGINX" ] || fail "nginx is not installed. Fix: run scripts/bootstrap.sh (it installs nginx), or apt-get install nginx"
[ -n "$LISTEN" ] || fail "--listen ADDR:PORT is missing (where the carts connect)"
[ -n "$UPSTREAM" ] || fail "--upstream ADDR:PORT is missing (the inference server's gRPC port)"
[ -n "$TOKEN_FILE" ] && [ -r "$TOKEN_FILE" ] || fail "--token-file is missing or unreadable: ${TOKEN_FILE:-(none)}. Fix: write the carts' bearer token into a file only root can read"
TOKEN="$(tr -d '\n' < "$TOKEN_FILE")"
[[ "$TOKEN" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || fail "the token in $TOKEN_FILE must be one word of letters, digits and ._~+/=- (a bearer token)"
mkdir -p "$STATE/tmp"
if [ -z "$CERT" ]; then
  CERT="$STATE/server.crt" KEY="$STATE/server.key"
  if [ ! -f "$CERT" ]; then
    command -v openssl >/dev/null || fail "openssl is missing (needed for the self-signed certificate). Fix: apt-get install openssl, or pass --cert and --key"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sonoflow ingress" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
      -keyout "$KEY" -out "$CERT" 2>/dev/null || fail "openssl could not make a certificate in $STATE"
    chmod 600 "$KEY"
  fi
fi
[ -r "$CERT" ] && [ -r "$KEY" ] || fail "the certificate ($CERT) or key ($KEY) is unreadable"
stop
sed -e "s#@STATE@#$STATE#g" -e "s#@LISTEN@#$LISTEN#g" -e "s#@UPSTREAM@#$UPSTREAM#g" \
    -e "s#@CERT@#$CERT#g" -e "s#@KEY@#$KEY#g" -e "s#@TOKEN@#$TOKEN#g" \
    "$ROOT/serve/ingress/nginx.conf.in" > "$STATE/nginx.conf"
chmod 600 "$STATE/nginx.conf"
"$NGINX" -t -q -p "$STATE" -e "$STATE/error.log" -c "$STATE/nginx.conf" \
  || fail "nginx refused $STATE/nginx.conf (its reason is above)"
"$NGINX" -p "$STATE" -e "$STATE/error.log" -c "$STATE/nginx.conf" \
  || fail "nginx did not start (see $STATE/error.log)"
for _ in $(seq 50); do [ -s "$STATE/nginx.pid" ] && break; sleep 0.1; done
[ -s "$STATE/nginx.pid" ] || fail "nginx did not write its pid file (see $STATE/error.log)"
say "listening on https://$LISTEN for $UPSTREAM (certificate $CERT)"
