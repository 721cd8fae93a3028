// Package charts draws the PNG charts of ffpipe's benchmark and chaos
// reports (pipeline against the xargs ffmpeg baseline, latency
// percentiles) with the standard library's image packages and the 7×13
// bitmap font of golang.org/x/image/font/basicfont: no other dependency,
// no fonts to install, identical pixels on every machine.
//
//   - Bars / BarChart: grouped bars, vertical or horizontal, with value
//     labels, a legend by bar label and dashed target lines.
//   - Line / LineChart: series of points, e.g. p50/p95/p99 against load.
//   - Histogram / HistogramChart: value counts with p50/p95/p99 markers.
//   - WritePNG writes any image atomically.
//
// Labels are drawn in ASCII (other characters become '?'); the bitmap font
// is scaled ×2 for titles. Image sizes are clamped to 120×90 … 8192×8192.
// It lives under internal/tooling: only tooling uses it.
package charts
