// Public exports of src/viz (filled in as the layer grows).
export {};
