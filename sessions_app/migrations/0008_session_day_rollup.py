# The per-(UTC day, model, source, profile) rollup of sessions and empty sessions, and the row that
# holds its watermark. New tables only: the session and message tables (and their has-messages
# triggers on SQLite) are not touched.

import agents_app.fields
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents_app', '0003_tally_key_collation'),
        ("sessions_app", "0007_trend_marker"),
    ]

    operations = [
        migrations.CreateModel(
            name='SessionRollupState',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('watermark', models.DateField(help_text='The first UTC day not in the rollup; empty: not built.', null=True)),
                ('built_at', models.DateTimeField(help_text='When a build last brought the rollup up to the watermark.', null=True)),
            ],
            options={
                'verbose_name': 'session rollup state',
            },
        ),
        migrations.CreateModel(
            name='SessionDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField(help_text='UTC day the sessions started.')),
                ('source', agents_app.fields.KeyField(max_length=64)),
                ('profile', agents_app.fields.KeyField(max_length=64)),
                ('sessions', models.PositiveBigIntegerField()),
                ('empty', models.PositiveBigIntegerField(help_text='Sessions without a message row (the has_messages flag).')),
                ('model', models.ForeignKey(blank=True, db_index=False, help_text="The sessions' model; empty for sessions without one.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='agents_app.languagemodel')),
            ],
            options={
                'verbose_name': 'session day',
                'ordering': ['day', 'model', 'source', 'profile'],
                'constraints': [models.UniqueConstraint(fields=('day', 'model', 'source', 'profile'), name='session_day_key')],
            },
        ),
    ]
