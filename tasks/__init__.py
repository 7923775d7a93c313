"""texfarm's math: pure torch task kinds (no Ray, no boto3), runnable directly on any device."""
