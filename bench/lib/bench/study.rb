# frozen_string_literal: true

module Bench
  # One question bench/studies.rb answers: the targets, endpoints and ratio
  # columns of its session, the workload (bench_app.ru unless it says), and
  # an optional summary table under the usual ones. `conditions` names
  # [label, target, endpoint] cells to set side by side, each against the
  # first; `best_of` lists families (a target name without its @WxT) whose
  # fastest shape per endpoint the summary picks, each against the last.
  Study = Struct.new(:name, :question, :targets, :endpoints, :ratios, :workload, :conditions, :best_of,
                     keyword_init: true) do
    # The study's settings over `options` (compare.rb's defaults); flags
    # given on the command line are parsed after, so they still win.
    def apply(options)
      options.targets = targets
      options.endpoints = endpoints
      options.ratios = ratios || []
      options.workload = workload&.call
      options.output = File.join(RESULTS_DIR, "study-#{name}.md")
      options
    end

    # [text, markdown] of the summary, or nil when there is none.
    def summary(session)
      headers, rows = if conditions then condition_rows(session.runner.cells)
                      elsif best_of then best_rows(session.options, session.runner.cells)
                      end
      return nil unless headers

      title = "#{name}: #{question}"
      numeric = [headers.size - 2, headers.size - 1]
      [[title, Tables.text(headers, rows, numeric)].join("\n"),
       ["## #{title}", "", Tables.markdown(headers, rows, numeric)].join("\n")]
    end

    private

    def condition_rows(cells)
      medians = conditions.map { |_, target, endpoint| Stats.medians(endpoint, cells)[target] }
      rows = conditions.each_with_index.map do |(label, target, endpoint), i|
        ratio = medians[i] && medians[0]&.positive? ? format("%.2fx", medians[i] / medians[0]) : "-"
        [label, "#{target} #{endpoint}", medians[i] ? Figures.number(medians[i]) : "-", ratio]
      end
      [["condition", "target, endpoint", "req/s (median)", "vs #{conditions[0][0]}"], rows]
    end

    def best_rows(options, cells)
      rows = options.endpoints.flat_map do |endpoint|
        medians = Stats.medians(endpoint, cells)
        best = best_of.to_h do |family|
          shapes = medians.select { |t, v| v && t.sub(Target::SHAPE, "") == family }
          [family, shapes.max_by { |_, v| v }]
        end
        yardstick = best[best_of.last]&.last
        best.map do |family, (target, rps)|
          ratio = rps && yardstick&.positive? ? format("%.2fx", rps / yardstick) : "-"
          [endpoint, family, target || "-", rps ? Figures.number(rps) : "-", ratio]
        end
      end
      [["endpoint", "family", "best shape", "req/s (median)", "vs best #{best_of.last}"], rows]
    end
  end
end
