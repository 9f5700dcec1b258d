#!/usr/bin/env bash
# Generate a development CA and a serving certificate for localhost / 127.0.0.1 into DIR.
# Used by `make run`; never use these certificates outside a developer machine.
set -euo pipefail
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=meshguard-dev-ca" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile tls.ext -out tls.crt 2>/dev/null
rm -f tls.csr tls.ext ca.srl
echo "wrote $dir/ca.crt $dir/tls.crt $dir/tls.key"
