# Warnings for our own targets (not for third-party headers, which come in as SYSTEM includes).
add_library(tb_warnings INTERFACE)
target_compile_options(tb_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
  -Woverloaded-virtual -Wimplicit-fallthrough
  # Designated initializers that leave defaulted members out are the point of them.
  -Wno-missing-field-initializers)
# gcc warns (-Wtsan) that ThreadSanitizer does not model std::atomic_thread_fence. The only
# fences in our builds are Asio's std_fenced_block around handler dispatch (inlined from
# boost/asio/detail/std_fenced_block.hpp into every file that runs an io_context); the same
# hand-over is also ordered by the scheduler's mutex, which TSan does see, so the fences
# cannot hide a race from it. Silenced only in the tsan build.
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
  target_compile_options(tb_warnings INTERFACE -Wno-tsan)
endif()
if(TB_WARNINGS_AS_ERRORS)
  target_compile_options(tb_warnings INTERFACE -Werror)
endif()

# Hardening for release-style builds (harmless elsewhere).
add_library(tb_hardening INTERFACE)
target_compile_options(tb_hardening INTERFACE -fstack-protector-strong -fPIE
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
target_link_options(tb_hardening INTERFACE -pie -Wl,-z,relro,-z,now -Wl,--as-needed)
