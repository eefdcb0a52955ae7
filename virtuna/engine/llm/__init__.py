"""LLM providers (Gemini, DeepSeek) over their REST APIs, behind circuit breakers."""
