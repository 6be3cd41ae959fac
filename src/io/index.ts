// Public exports of src/io (filled in as the layer grows).
export {};
