# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# `include_context "in a fresh directory"`: each example gets an empty
# directory of its own in @dir, removed after it (and after the example's
# servers stop), and #write to put files in it.
RSpec.shared_context "in a fresh directory" do
  around do |example|
    Dir.mktmpdir("kino-spec") do |dir|
      @dir = dir
      example.run
    end
  end

  # Writes +source+ to +relative_path+ under @dir, making the folders it
  # names, and returns the file's full path.
  def write(relative_path, source)
    path = File.join(@dir, relative_path)
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, source)
    path
  end
end
