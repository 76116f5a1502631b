"""The content and form rules of the messaging policy (SPEC: "Forbidden content", "Form",
"Attachments"): pure checks of the ContentFacts read from the message."""
