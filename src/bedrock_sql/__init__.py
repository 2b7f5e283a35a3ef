"""bedrock-sql: Amazon Bedrock custom-model encryption posture as SQL."""

__version__ = "0.1.0"
