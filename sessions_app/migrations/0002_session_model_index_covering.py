# Make the (model, started_at) index covering for the per-model empty-session report.
# The new index is built before the old one is dropped, so model lookups always have an index.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='session',
            index=models.Index(fields=['model', 'started_at', 'id'], name='session_model_started_id'),
        ),
        migrations.RemoveIndex(
            model_name='session',
            name='session_model_started',
        ),
    ]
