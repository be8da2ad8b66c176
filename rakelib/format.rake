# frozen_string_literal: true

# clang-format's output changes between releases, so the tasks name the
# one bin/setup installs (Debian 12's clang-format-14).
CLANG_FORMAT = ENV.fetch("CLANG_FORMAT", "clang-format-14")
CXX_SOURCES = FileList["ext/kino/**/*.{cpp,hpp}"]

desc "Reformat the C++ sources with clang-format"
task :format do
  sh CLANG_FORMAT, "-i", *CXX_SOURCES
end

namespace :format do
  desc "Fail when a C++ source is not formatted as .clang-format says"
  task :check do
    sh CLANG_FORMAT, "--dry-run", "--Werror", *CXX_SOURCES
  end
end
