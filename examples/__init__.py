"""Example queries for analysts (see README, "Examples"); `bedrock-sql serve` offers each as a canned query."""
