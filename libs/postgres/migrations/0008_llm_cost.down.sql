ALTER TABLE runs
    DROP COLUMN llm_calls,
    DROP COLUMN llm_input_tokens,
    DROP COLUMN llm_output_tokens,
    DROP COLUMN llm_cost_usd,
    DROP COLUMN tool_calls;
DROP TABLE llm_calls;
