"""The SMTP adapter: aiosmtpd listeners (MX and submission) in front of the intake."""
