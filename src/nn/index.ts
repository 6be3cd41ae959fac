// Public exports of src/nn (filled in as the layer grows).
export {};
