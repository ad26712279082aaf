#!/usr/bin/env bash
# Pictures of the built manual (site/, `make docs` first) taken by a real browser: Debian's Chromium, headless,
# against the site served on loopback. Writes site-screenshots/{home,task}.png; look at them before publishing.
# Chromium is started so that it reaches no network (this machine's, or anyone's): no background networking, no
# component updates, no sync; the page fetches nothing either (no web fonts, no CDN: mkdocs.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f site/index.html ] || { echo "site/ is not built: make docs" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    browser=/usr/bin/chromium
  else
    echo "please install chromium (Debian/Ubuntu: sudo apt-get install chromium)" >&2; exit 1
  fi
fi
out=site-screenshots
mkdir -p "$out"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory site >/dev/null 2>&1 &
server=$!
profile="$(mktemp -d)"
trap 'kill $server 2>/dev/null; rm -rf "$profile"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
shoot() {  # shoot NAME PATH
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
    --window-size=1280,900 --virtual-time-budget=3000 --screenshot="$out/$1.png" "http://127.0.0.1:$port/$2" \
    >/dev/null 2>&1
  test -s "$out/$1.png" || { echo "no picture of $2" >&2; exit 1; }
  echo "$out/$1.png: $2"
}
shoot home index.html
shoot task tasks/inbound.html
shoot lifecycle concepts/lifecycle.html
