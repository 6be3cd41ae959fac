export { heatmapSVG, heatmapPNG, attentionHeatmapSVG, attentionHeatmapPNG, matrixOf, colorAt, type Matrix, type HeatmapOptions } from './heatmap.js';
