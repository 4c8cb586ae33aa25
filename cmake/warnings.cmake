# Warnings for our own targets (not for third-party headers, which come in as SYSTEM includes).
add_library(tb_warnings INTERFACE)
target_compile_options(tb_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
  -Woverloaded-virtual -Wimplicit-fallthrough
  # Designated initializers that leave defaulted members out are the point of them.
  -Wno-missing-field-initializers)
if(TB_WARNINGS_AS_ERRORS)
  target_compile_options(tb_warnings INTERFACE -Werror)
endif()

# Hardening for release-style builds (harmless elsewhere).
add_library(tb_hardening INTERFACE)
target_compile_options(tb_hardening INTERFACE -fstack-protector-strong -fPIE
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
target_link_options(tb_hardening INTERFACE -pie -Wl,-z,relro,-z,now -Wl,--as-needed)
