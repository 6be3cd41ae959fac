// Public exports of src/viz (the `viz` namespace).
export { heatmapSVG, heatmapPNG, attentionHeatmapSVG, attentionHeatmapPNG, matrixOf, type Matrix, type HeatmapOptions } from './heatmap.js';
