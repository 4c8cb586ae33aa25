# Shared by scripts/run and scripts/test (sourced, not run).

# Configures and builds a CMake preset; ccache is used when present (CI machines keep it).
# Called from the repository's root.
tb_build() {
  local preset=$1
  shift
  local launcher=""
  command -v ccache >/dev/null 2>&1 && launcher=ccache
  # Cache hits whatever directory the checkout is in (CI's and a fresh clone's may differ):
  # ccache rewrites paths under the checkout to relative ones, and the build directory is not
  # hashed, so debug info of a hit may name another checkout's directory (file names in sanitizer
  # reports are then relative to the build directory). A path compiled into the code (a -D value,
  # a configured header) stays in the hash, so such objects are never shared across checkouts.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
  TB_COMPILER_LAUNCHER=$launcher cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" "$@"
}
