/**
 * The bot's figures in Prometheus's text exposition format (version 0.0.4): counters, gauges
 * and histograms with labels, and nothing else (no client library, no push). BotMetrics names
 * the figures tunebot keeps; the engine, the model host and the job runner update them, and an
 * adapter serves `render()` at GET /metrics.
 */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type LabelValues<L extends string> = Readonly<Record<L, string>>;
/** An unlabelled metric's methods take no labels argument; a labelled one's take them first. */
type Args<L extends string, Rest extends unknown[]> = [L] extends [never] ? Rest : [labels: LabelValues<L>, ...Rest];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/u;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/u;

abstract class Metric<L extends string, Series> {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  private readonly series = new Map<string, { readonly labels: string; value: Series }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {
    if (!METRIC_NAME.test(name)) throw new RangeError(`"${name}" is not a valid metric name (${METRIC_NAME.source})`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new RangeError(`"${label}" is not a valid label name for ${name}`);
    }
  }

  protected abstract fresh(): Series;
  protected abstract sampleLines(labels: string, value: Series): string[];

  /** The series for these label values, made on first use. */
  protected seriesOf(args: readonly unknown[]): { series: Series; rest: unknown[] } {
    const labelled = this.labelNames.length > 0;
    const labels = labelled ? this.formatLabels(args[0] as Record<string, unknown> | undefined) : '';
    let entry = this.series.get(labels);
    if (!entry) this.series.set(labels, (entry = { labels, value: this.fresh() }));
    return { series: entry.value, rest: args.slice(labelled ? 1 : 0) };
  }

  /** `{a="x",b="y"}` in the declared order, after checking the set of names. */
  private formatLabels(values: Record<string, unknown> | undefined): string {
    const given = Object.keys(values ?? {});
    const extra = given.filter((name) => !(this.labelNames as readonly string[]).includes(name));
    const missing = this.labelNames.filter((name) => typeof values?.[name] !== 'string');
    if (extra.length > 0 || missing.length > 0) {
      throw new RangeError(`${this.name} takes the labels ${this.labelNames.join(', ')} (strings); got ${given.join(', ') || 'none'}`);
    }
    return this.labelNames.map((name) => `${name}="${escapeLabelValue(values?.[name] as string)}"`).join(',');
  }

  render(): string {
    // An unlabelled metric reads 0 before its first update rather than missing.
    if (this.labelNames.length === 0) this.seriesOf([]);
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, value } of this.series.values()) lines.push(...this.sampleLines(labels, value));
    return lines.join('\n');
  }
}

export class Counter<L extends string = never> extends Metric<L, { value: number }> {
  readonly type = 'counter';

  inc(...args: Args<L, [by?: number]>): void {
    const { series, rest } = this.seriesOf(args);
    const by = (rest[0] as number | undefined) ?? 1;
    if (!(by >= 0)) throw new RangeError(`a counter only goes up: ${this.name} was given ${by}`);
    series.value += by;
  }

  protected fresh() {
    return { value: 0 };
  }

  protected sampleLines(labels: string, series: { value: number }): string[] {
    return [sample(this.name, labels, series.value)];
  }
}

export class Gauge<L extends string = never> extends Metric<L, { value: number }> {
  readonly type = 'gauge';

  set(...args: Args<L, [value: number]>): void {
    const { series, rest } = this.seriesOf(args);
    series.value = rest[0] as number;
  }

  /** Adds `by` (1 when left out; negative to go down). */
  add(...args: Args<L, [by?: number]>): void {
    const { series, rest } = this.seriesOf(args);
    series.value += (rest[0] as number | undefined) ?? 1;
  }

  protected fresh() {
    return { value: 0 };
  }

  protected sampleLines(labels: string, series: { value: number }): string[] {
    return [sample(this.name, labels, series.value)];
  }
}

interface HistogramSeries {
  /** Observations per bucket, not yet cumulative; the last slot is +Inf. */
  readonly counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Metric<L, HistogramSeries> {
  readonly type = 'histogram';

  constructor(name: string, help: string, readonly buckets: readonly number[], labelNames: readonly L[]) {
    super(name, help, labelNames);
    if (buckets.length === 0 || buckets.some((bound, i) => !Number.isFinite(bound) || (i > 0 && bound <= buckets[i - 1]))) {
      throw new RangeError(`${name}'s buckets must be finite and increasing, got [${buckets.join(', ')}]`);
    }
    if ((labelNames as readonly string[]).includes('le')) throw new RangeError(`${name}: "le" is the bucket label of a histogram`);
  }

  observe(...args: Args<L, [value: number]>): void {
    const { series, rest } = this.seriesOf(args);
    const value = rest[0] as number;
    const bucket = this.buckets.findIndex((bound) => value <= bound);
    series.counts[bucket === -1 ? this.buckets.length : bucket]++;
    series.sum += value;
    series.count++;
  }

  protected fresh(): HistogramSeries {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  protected sampleLines(labels: string, series: HistogramSeries): string[] {
    const prefix = labels ? `${labels},` : '';
    let cumulative = 0;
    const lines = [...this.buckets, Infinity].map((bound, i) => {
      cumulative += series.counts[i];
      return sample(`${this.name}_bucket`, `${prefix}le="${formatNumber(bound)}"`, cumulative);
    });
    lines.push(sample(`${this.name}_sum`, labels, series.sum), sample(`${this.name}_count`, labels, series.count));
    return lines;
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric<string, unknown>>();

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.register(new Counter<L>(name, help, labelNames));
  }

  gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return this.register(new Gauge<L>(name, help, labelNames));
  }

  histogram<L extends string = never>(name: string, help: string, buckets: readonly number[], labelNames: readonly L[] = []): Histogram<L> {
    return this.register(new Histogram<L>(name, help, buckets, labelNames));
  }

  /** Every metric, in the order registered; the text ends with a newline, as the format asks. */
  render(): string {
    return `${[...this.metrics.values()].map((metric) => metric.render()).join('\n')}\n`;
  }

  private register<M extends Metric<string, unknown>>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new RangeError(`a metric named ${metric.name} is already registered`);
    this.metrics.set(metric.name, metric as unknown as Metric<string, unknown>);
    return metric;
  }
}

/** How the engine answered a message; "refused": empty, too long or rate-limited. */
export const MESSAGE_PATHS = ['command', 'faq', 'model', 'fallback', 'refused', 'error'] as const;
export type MessagePath = (typeof MESSAGE_PATHS)[number];

/** A reaction on an answer: thumbs-up or thumbs-down. */
export const FEEDBACK_KINDS = ['up', 'down'] as const;
export type FeedbackKind = (typeof FEEDBACK_KINDS)[number];

/** FAQ answers take milliseconds; model replies on a CPU take seconds. */
const REPLY_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** tunebot's figures. Each process has one, shared by the engine, the model host and the jobs. */
export class BotMetrics {
  readonly registry = new MetricsRegistry();
  readonly messages = this.registry.counter('tunebot_messages_total', 'Messages handled, by how they were answered.', ['path']);
  readonly replySeconds = this.registry.histogram('tunebot_reply_seconds', 'Time from a message to the end of its reply, in seconds.', REPLY_SECONDS_BUCKETS, ['path']);
  readonly generatedTokens = this.registry.counter('tunebot_generated_tokens_total', 'Tokens generated by the served model.');
  readonly tokensPerSecond = this.registry.gauge('tunebot_generation_tokens_per_second', 'Generated tokens per second of the last finished generation, its wait in the queue and its prompt included.');
  readonly modelRequestsInFlight = this.registry.gauge('tunebot_model_requests_in_flight', 'Generations queued or running in the model host.');
  readonly fineTuneJobsStarted = this.registry.counter('tunebot_fine_tune_jobs_started_total', 'Fine-tuning jobs started.');
  readonly fineTuneJobsFinished = this.registry.counter('tunebot_fine_tune_jobs_finished_total', 'Fine-tuning jobs finished, by their final status.', ['status']);
  readonly feedback = this.registry.counter('tunebot_feedback_total', "Thumbs-up and thumbs-down reactions on the bot's answers, each user's first of each kind per answer.", ['kind']);

  constructor() {
    // Series that exist from the start read 0 instead of missing, so that rates work from the first scrape.
    for (const path of MESSAGE_PATHS) this.messages.inc({ path }, 0);
    for (const kind of FEEDBACK_KINDS) this.feedback.inc({ kind }, 0);
  }

  messageHandled(path: MessagePath, seconds: number): void {
    this.messages.inc({ path });
    this.replySeconds.observe({ path }, seconds);
  }

  feedbackCounted(kind: FeedbackKind): void {
    this.feedback.inc({ kind });
  }

  generationFinished(tokens: number, seconds: number): void {
    this.generatedTokens.inc(tokens);
    if (tokens > 0 && seconds > 0) this.tokensPerSecond.set(tokens / seconds);
  }

  render(): string {
    return this.registry.render();
  }
}

function sample(name: string, labels: string, value: number): string {
  return `${name}${labels ? `{${labels}}` : ''} ${formatNumber(value)}`;
}

/** Go's float syntax, which Prometheus parses: +Inf, -Inf, NaN. */
function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function escapeHelp(text: string): string {
  return text.replace(/\\/gu, '\\\\').replace(/\n/gu, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/gu, '\\\\').replace(/"/gu, '\\"').replace(/\n/gu, '\\n');
}
