# Sourced by the set-up scripts: SUDO is the prefix for commands that need root (empty when
# running as root, or when there is no sudo to ask).
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=()
fi
