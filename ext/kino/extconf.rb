# frozen_string_literal: true

# Builds Kino's extension: the C++ core (core/*.cpp, no Ruby in it) and the
# thin binding (*.cpp here). Every C++ library comes from the system; a
# missing one stops the build with the Debian package to install.
require "mkmf"

# mkmf's checks must compile as C++ or C++-only headers (<atomic>) fail.
include MakeMakefile["C++"]

def abort_missing(what, package)
  abort <<~MSG

    kino: #{what} was not found.
    On Debian or Ubuntu install it with:  sudo apt-get install #{package}
    (bin/setup installs every package Kino needs.)

  MSG
end

$CXXFLAGS = [$CXXFLAGS, "-std=c++20"].join(" ") unless $CXXFLAGS.include?("-std=")
# Boost 1.74's asio uses std::exchange without including <utility>.
ASIO_PREHEADERS = %w[utility].freeze

pkg_config("libllhttp") || abort_missing("llhttp (pkg-config module libllhttp)", "libllhttp-dev")
llhttp_version = `pkg-config --modversion libllhttp 2>/dev/null`.strip
if Gem::Version.new(llhttp_version.empty? ? "0" : llhttp_version) < Gem::Version.new("9.2")
  abort_missing("llhttp >= 9.2 (found #{llhttp_version.empty? ? 'none' : llhttp_version}; " \
                "older releases have request-smuggling bugs)",
                "-t trixie libllhttp-dev   # Debian 12: bin/setup adds trixie pinned low")
end
have_header("llhttp.h") || abort_missing("llhttp.h", "libllhttp-dev")
have_library("llhttp", "llhttp_init", "llhttp.h") || abort_missing("libllhttp", "libllhttp-dev")

have_header("mimalloc.h") || abort_missing("mimalloc.h", "libmimalloc-dev")
# In C++ mode the probe needs the header, or mi_malloc gets C++ linkage.
have_library("mimalloc", "mi_malloc", "mimalloc.h") || abort_missing("libmimalloc", "libmimalloc-dev")

have_header("boost/asio.hpp", ASIO_PREHEADERS) || abort_missing("Boost.Asio", "libboost-dev")
have_header("concurrentqueue/blockingconcurrentqueue.h") ||
  abort_missing("moodycamel ConcurrentQueue", "libconcurrentqueue-dev")
# TLS (tls directive): OpenSSL through Boost.Asio's SSL stream.
have_header("openssl/ssl.h") || abort_missing("OpenSSL headers (openssl/ssl.h)", "libssl-dev")
have_library("crypto", "ERR_get_error", "openssl/err.h") || abort_missing("libcrypto", "libssl-dev")
have_library("ssl", "SSL_CTX_new", "openssl/ssl.h") || abort_missing("libssl", "libssl-dev")
have_library("pthread")

have_func("rb_hash_new_capa", "ruby.h")
have_func("rb_ext_ractor_safe", "ruby.h")

# Ruby's own headers warn under -Wextra in C++; as system headers they
# stay quiet and our warnings stay visible.
ruby_includes = [RbConfig::CONFIG["rubyhdrdir"], RbConfig::CONFIG["rubyarchhdrdir"]].compact.uniq
system_includes = ruby_includes.map { |d| "-isystem #{d}" }.join(" ")
$INCFLAGS = "#{system_includes} #{$INCFLAGS}"

$CXXFLAGS << " -O2 -fvisibility=hidden -fvisibility-inlines-hidden -Wall -Wextra"
$CXXFLAGS << " -DBOOST_ASIO_NO_DEPRECATED"
$CXXFLAGS << " -g" unless $CXXFLAGS.include?("-g")
# Header dependencies: mkmf's Makefile knows only the .cpp files, and an
# object compiled against an older header breaks at run time.
$CXXFLAGS << " -MMD -MP"

# Sources: the binding in binding/ (the only code that sees Ruby and the
# core) and the core in core/, one folder a layer (util, handoff, http1,
# net). Object files land flat in the build directory, so a file name may
# stand only once across all of them.
source_dirs = [File.join(__dir__, "binding")] + Dir[File.join(__dir__, "core", "**", "")].map { |d| d.chomp("/") }
sources = source_dirs.flat_map { |dir| Dir[File.join(dir, "*.cpp")] }.sort
$srcs = sources.map { |f| File.basename(f) }
repeated = $srcs.group_by(&:itself).select { |_, names| names.size > 1 }.keys
abort "kino: C++ source names must not repeat across folders: #{repeated.join(', ')}" unless repeated.empty?
sources.map { |f| File.dirname(f) }.uniq.each do |dir|
  $VPATH << "$(srcdir)/#{dir.delete_prefix("#{__dir__}/")}"
end
$INCFLAGS << " -I$(srcdir) -I$(srcdir)/core"

# extconf.rb reruns when the source list changes (Rakefile); objects and
# dependency files from the old list may name sources that moved, so the
# build starts over.
FileUtils.rm_f(Dir["*.o"] + Dir["*.d"])
create_makefile("kino/kino")
File.open("Makefile", "a") { |f| f.puts "\n-include $(OBJS:.o=.d)" }
