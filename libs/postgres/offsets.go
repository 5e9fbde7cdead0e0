package postgres

// ProjectorConsumer is the key (column consumer of consumer_offsets) under which the
// projector records, per partition, the next offset it will apply; the command service
// reads it to wait until its writes are projected.
const ProjectorConsumer = "projector"

// ProjectedChannel is the LISTEN/NOTIFY channel on which the projector announces, when a
// batch commits, that its offsets moved: the command service's writes waiting to see their
// event projected wake at once instead of at their next poll.
const ProjectedChannel = "ticketflow_projected"
