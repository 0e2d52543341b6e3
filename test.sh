#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, builds the
# workspace (the end-to-end tests load its plugin .so files) and runs every test.
# Arguments go to `cargo test --workspace` (a name filter: `./test.sh readme_tour`).
#
# Missing tools come from Debian packages through apt-get, with sudo when not root:
#   mosquitto, mosquitto-clients  the radio tests start private brokers, publish with mosquitto_pub
#   curl                          the README tour test runs the README's curl commands
#   git                           the document tests list the repository's files
#   promtool (prometheus)         the metrics test lints /metrics with `promtool check metrics`
#   chromium, chromium-driver     the dashboard test drives a headless Chromium through chromedriver
#   python3-selenium              ... from tests/dashboard/check.py
set -euo pipefail
cd "$(dirname "$0")"

# Each needed command and the Debian package that provides it.
needed=(
    "mosquitto mosquitto"
    "mosquitto_pub mosquitto-clients"
    "curl curl"
    "git git"
    "promtool prometheus"
    "chromium chromium"
    "chromedriver chromium-driver"
)
missing=()
for pair in "${needed[@]}"; do
    read -r command package <<<"$pair"
    # Debian installs the broker in /usr/sbin, which a user's PATH may leave out.
    if ! command -v "$command" >/dev/null && [ ! -x "/usr/sbin/$command" ]; then
        missing+=("$package")
    fi
done
# Selenium is a Python module, not a command. The dashboard test runs the first python3
# that imports it: a python3 of pyenv's first on PATH does not see Debian's modules.
if ! python3 -c 'import selenium' 2>/dev/null && ! /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
    missing+=("python3-selenium")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "error: the tests need the Debian packages ${missing[*]} (or their tools on PATH), and there is no apt-get" >&2
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    echo "== installing ${missing[*]} (apt-get${sudo:+ through sudo})"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "== cargo build --workspace"
cargo build --workspace
echo "== cargo test --workspace"
cargo test --workspace "$@"
