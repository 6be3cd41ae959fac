// The float64 attention reference (scaled dot-product attention forward and backward, additive attention) is one
// module shared with the benchmarks: bench/lib/attention_reference.mjs (plain JavaScript, so Node and the browser bench
// run it as it is; types in attention_reference.d.mts). Tests import it from here.
export * from '../../bench/lib/attention_reference.mjs';
