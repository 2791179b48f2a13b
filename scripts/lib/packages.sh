# Installs the Debian packages Herald builds and tests with, if any is missing.
# Sourced by scripts/run, scripts/test and .ci/run.
HERALD_PACKAGES=(pkg-config libhiredis-dev redis-server nginx openssl python3-venv gdb iproute2 postgresql)

ensure_packages() {
    local missing=()
    for package in "${HERALD_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing missing packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
