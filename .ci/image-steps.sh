#!/usr/bin/env bash
# The CPU image's steps (Dockerfile, TARGET=cpu) outside Docker, which CI does not have: the build
# context that .dockerignore lets through, the build stage's npm steps, the runtime stage's
# folder, then its CMD with its ENV, until its HEALTHCHECK command passes; then a SIGTERM, which
# must end the bot with exit code 0. Keep the npm steps in step with the Dockerfile's RUN lines.
# The image's Node is its base image's (ARG NODE_IMAGE); CI's own Node may be older, so the runtime
# steps run under the Node that npm ci installed in the repo's node_modules, of the same major.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
bot_pid=""
cleanup() {
  if [ -n "$bot_pid" ]; then kill -9 "$bot_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
started=$SECONDS
say() { printf '[image-steps %3ds] %s\n' "$((SECONDS - started))" "$*"; }

# The build context.
mkdir -p "$work/build" "$work/app" "$work/data"
while read -r path; do cp -r "$repo/$path" "$work/build/"; done < <(sed -n 's/^!//p' "$repo/.dockerignore")

# Stages deps and build.
cd "$work/build"
say "npm ci --ignore-scripts"
npm ci --ignore-scripts --no-audit --no-fund
say "npm run build && npm prune --omit=dev && rm -rf node_modules/.bin/node node_modules/node-linux-*"
npm run build
npm prune --omit=dev --no-audit --no-fund
rm -rf node_modules/.bin/node node_modules/node-linux-*
if [ -e node_modules/typescript ] || [ -e node_modules/tsx ]; then echo "npm prune left dev dependencies in node_modules" >&2; exit 1; fi

# The runtime stage's /app.
cp -r node_modules dist "$work/app/"
cp -r "$repo/package.json" "$repo/bin" "$repo/config" "$work/app/"

# The base image's Node: its major from the Dockerfile, its binary from the repo's node_modules.
image_node_major="$(sed -n 's/^ARG NODE_IMAGE=node:\([0-9]*\)-.*$/\1/p' "$repo/Dockerfile")"
[ -n "$image_node_major" ] || { echo "no ARG NODE_IMAGE=node:<major>-... in the Dockerfile" >&2; exit 1; }
mkdir "$work/node-bin"
ln -s "$(readlink -f "$repo/node_modules/.bin/node")" "$work/node-bin/node"
export PATH="$work/node-bin:$PATH"
node_version="$(node --version)"
if [ "${node_version%%.*}" != "v$image_node_major" ]; then echo "the runtime steps need Node $image_node_major, as node:$image_node_major in the Dockerfile; $repo/node_modules/.bin/node is $node_version" >&2; exit 1; fi
say "the runtime steps run under Node $node_version"

# Its ENV and HEALTHCHECK, read from the Dockerfile: /data becomes a scratch folder, the port an
# ephemeral one, and the first fine-tune runs one epoch to keep CI short.
eval "$(node - "$repo/Dockerfile" "$work/data" <<'EOF'
const [file, data] = process.argv.slice(2);
const lines = require('node:fs').readFileSync(file, 'utf8').replace(/\\\n/g, ' ').split('\n');
const quote = (text) => `'${text.replace(/'/g, `'\\''`)}'`;
for (const line of lines) {
  const env = /^ENV\s+(.*)$/.exec(line);
  if (env) for (const [, name, value] of env[1].matchAll(/(\w+)=(\S+)/g)) console.log(`export ${name}=${quote(value.replace(/(^|\/\/)\/data\b/, `$1${data}`))}`);
  const check = /^HEALTHCHECK\s.*?\bCMD\s+(\[.*\])\s*$/.exec(line);
  if (check) console.log(`healthcheck=(${JSON.parse(check[1]).map(quote).join(' ')})`);
}
EOF
)"
[ "${#healthcheck[@]}" -gt 0 ] || { echo "no HEALTHCHECK CMD [...] in the Dockerfile" >&2; exit 1; }
image_port="$TUNEBOT_LOCAL_PORT"
export TUNEBOT_LOCAL_PORT=0 TUNEBOT_FINE_TUNE_EPOCHS=1 LOG_LEVEL=warn
say "node bin/tunebot.js start (TUNEBOT_MODEL_DIR=$TUNEBOT_MODEL_DIR TUNEBOT_STORAGE_URL=$TUNEBOT_STORAGE_URL TUNEBOT_LOCAL_HOST=$TUNEBOT_LOCAL_HOST)"
cd "$work/app"
node bin/tunebot.js start > "$work/stdout" 2> "$work/stderr" &
bot_pid=$!

url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^tunebot is serving the local chat at \(http:[^ ]*\)$/\1/p' "$work/stdout")"
  [ -n "$url" ] && break
  kill -0 "$bot_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$url" ]; then
  echo "tunebot did not start serving:" >&2; cat "$work/stdout" "$work/stderr" >&2; exit 1
fi
port="${url##*:}"
say "serving at $url; running the HEALTHCHECK command against port $port"
healthy=""
for _ in $(seq 1 60); do
  if (cd "$work/app" && "${healthcheck[@]//:$image_port\//:$port/}"); then healthy=yes; break; fi
  sleep 0.5
done
[ -n "$healthy" ] || { echo "the HEALTHCHECK command never passed" >&2; cat "$work/stderr" >&2; exit 1; }
node -e "fetch(process.argv[1]).then(async (r) => { const text = await r.text(); if (!r.ok || !text.includes('# TYPE tunebot_messages_total counter')) { console.error(text); process.exit(1); } })" "$url/metrics"

say "SIGTERM"
kill -TERM "$bot_pid"
status=0
wait "$bot_pid" || status=$?
bot_pid=""
if [ "$status" -ne 0 ]; then echo "tunebot exited $status after SIGTERM:" >&2; cat "$work/stderr" >&2; exit 1; fi
say "the image's steps passed"
