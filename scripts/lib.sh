# Shared by scripts/run and scripts/test (sourced, not run).

# Configures and builds a CMake preset; ccache is used when present (CI machines keep it).
tb_build() {
  local preset=$1
  shift
  local launcher=""
  command -v ccache >/dev/null 2>&1 && launcher=ccache
  TB_COMPILER_LAUNCHER=$launcher cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" "$@"
}
