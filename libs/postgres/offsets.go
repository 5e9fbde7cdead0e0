package postgres

// ProjectorConsumer is the key (column consumer of consumer_offsets) under which the
// projector records, per partition, the next offset it will apply; the command service
// reads it to wait until its writes are projected.
const ProjectorConsumer = "projector"
