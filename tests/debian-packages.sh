# Sourced by tests/run and samples/run: installs the Debian 12 packages the build (and,
# with test_peers=true, the tests' independent peers) need when run as root, or names
# them and exits otherwise.
packages=(meson ninja-build pkg-config g++ clang-16 libclang-rt-16-dev libasio-dev libfmt-dev
  libboost-url1.81-dev doctest-dev libssl-dev zlib1g-dev)
# The Redis link (-Dredis, built when hiredis is found) and the real Redis its test
# starts on a free port (tests/redis_link.cpp).
packages+=(libhiredis-dev redis-server)
if [[ ${test_peers:-false} == true ]]; then
  # Python's websockets (seen by /usr/bin/python3) and headless Chromium; Node's ws and
  # playwright-core come from tests/package.json.
  packages+=(python3 python3-websockets chromium)
  command -v npm >/dev/null || packages+=(nodejs npm)
fi
if command -v dpkg-query >/dev/null; then
  missing=()
  for package in "${packages[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) == installed ]] ||
      missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "$(basename "$0"): missing Debian packages: ${missing[*]}"
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update
      apt-get install -y --no-install-recommends "${packages[@]}"
    else
      echo "Install them as root with:"
      echo "  apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
      exit 1
    fi
  fi
fi
