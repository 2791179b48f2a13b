# Python tools (kosoku, schemathesis, kubernetes-validate) in one virtual environment under
# .build-venv/, so nothing is installed into Debian's own Python (PEP 668).
# Sourced by scripts that need them: `pytool kosoku` installs on first use and prints the path.
HERALD_VENV="${HERALD_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.build-venv}"

pytool() { # pytool COMMAND [PIP-PACKAGE]
    local command="$1" package="${2:-$1}"
    if [ ! -x "$HERALD_VENV/bin/python" ]; then
        python3 -m venv "$HERALD_VENV" >&2
        "$HERALD_VENV/bin/pip" install -q --upgrade pip >&2
    fi
    if [ ! -x "$HERALD_VENV/bin/$command" ]; then
        "$HERALD_VENV/bin/pip" install -q "$package" >&2
    fi
    echo "$HERALD_VENV/bin/$command"
}

pymodule() { # pymodule IMPORT-NAME [PIP-PACKAGE]: a library (no command) in the same venv
    local module="$1" package="${2:-$1}"
    pytool pip >/dev/null
    "$HERALD_VENV/bin/python" -c "import $module" 2>/dev/null || "$HERALD_VENV/bin/pip" install -q "$package" >&2
}
