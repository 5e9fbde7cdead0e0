module github.com/ticketflow/ticketflow/services/processor

go 1.26.8

require github.com/ticketflow/ticketflow/libs v0.0.0

replace github.com/ticketflow/ticketflow/libs => ../../libs
