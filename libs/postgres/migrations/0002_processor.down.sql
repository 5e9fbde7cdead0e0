DROP TABLE IF EXISTS processor_runs, processor_tickets;
