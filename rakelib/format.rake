# frozen_string_literal: true

CXX_SOURCES = FileList["ext/kino/**/*.{cpp,hpp}"]

desc "Reformat the C++ sources with clang-format"
task :format do
  sh "clang-format", "-i", *CXX_SOURCES
end

namespace :format do
  desc "Fail when a C++ source is not formatted"
  task :check do
    sh "clang-format", "--dry-run", "--Werror", *CXX_SOURCES
  end
end
