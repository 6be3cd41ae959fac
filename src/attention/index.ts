// Public exports of src/attention (filled in as the layer grows).
export {};
