# Make the (source, started_at) index covering, as 0002 did for (model, started_at): the per-source
# report and the admin's source filter are then answered from the index without reading session
# rows. The new index is built before the old one is dropped, so source lookups always have one.
# Index end_reason for the admin's end_reason filter, whose choices were a full-table DISTINCT.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0002_session_model_index_covering'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='session',
            index=models.Index(fields=['source', 'started_at', 'id'], name='session_source_started_id'),
        ),
        migrations.RemoveIndex(
            model_name='session',
            name='session_source_started',
        ),
        migrations.AddIndex(
            model_name='session',
            index=models.Index(fields=['end_reason', 'started_at'], name='session_end_reason_started'),
        ),
    ]
