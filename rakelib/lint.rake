# frozen_string_literal: true

# RuboCop over the whole tree, with .rubocop.yml.
#
#   rake lint        # report offenses; fails when there are any
#   rake lint:fix    # apply RuboCop's safe corrections (-a), then report

desc "Check the Ruby code with RuboCop (.rubocop.yml)"
task :lint do
  sh "bundle", "exec", "rubocop"
end

namespace :lint do
  desc "Apply RuboCop's safe corrections (rubocop -a), then report what is left"
  task :fix do
    sh "bundle", "exec", "rubocop", "-a"
  end
end
