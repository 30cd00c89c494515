-- A results store written by clbench at commit c42eb09 (schema version 1), dumped with
-- sqlite3's iterdump: 3 completed fft runs and 1 failed ln run (tests/leaderboard_synthetic.py).
-- tests/test_migrations.py upgrades it to the current schema.
BEGIN TRANSACTION;
CREATE TABLE evaluations (
	id INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	after_session INTEGER NOT NULL, 
	eval_set VARCHAR(200) NOT NULL, 
	subset VARCHAR(64) NOT NULL, 
	accuracy FLOAT NOT NULL, 
	n INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_evaluations_key UNIQUE (run_id, after_session, eval_set, subset), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "evaluations" VALUES(1,'c0172581bcbf4bf0be6cc8a226253d70',0,'syn','all',0.1,100);
INSERT INTO "evaluations" VALUES(2,'c0172581bcbf4bf0be6cc8a226253d70',0,'ctrl-a','all',0.8,100);
INSERT INTO "evaluations" VALUES(3,'c0172581bcbf4bf0be6cc8a226253d70',0,'ctrl-b','all',0.6,100);
INSERT INTO "evaluations" VALUES(4,'c0172581bcbf4bf0be6cc8a226253d70',1,'syn','all',2.33333333333333337034e-01,100);
INSERT INTO "evaluations" VALUES(5,'c0172581bcbf4bf0be6cc8a226253d70',1,'syn','session:1',0.5,20);
INSERT INTO "evaluations" VALUES(6,'c0172581bcbf4bf0be6cc8a226253d70',1,'ctrl-a','all',7.66666666666666718477e-01,100);
INSERT INTO "evaluations" VALUES(7,'c0172581bcbf4bf0be6cc8a226253d70',1,'ctrl-b','all',5.66666666666666651863e-01,100);
INSERT INTO "evaluations" VALUES(8,'c0172581bcbf4bf0be6cc8a226253d70',2,'syn','all',3.66666666666666696272e-01,100);
INSERT INTO "evaluations" VALUES(9,'c0172581bcbf4bf0be6cc8a226253d70',2,'syn','session:1',4.73333333333333383663e-01,20);
INSERT INTO "evaluations" VALUES(10,'c0172581bcbf4bf0be6cc8a226253d70',2,'syn','session:2',0.5,20);
INSERT INTO "evaluations" VALUES(11,'c0172581bcbf4bf0be6cc8a226253d70',2,'ctrl-a','all',7.33333333333333392545e-01,100);
INSERT INTO "evaluations" VALUES(12,'c0172581bcbf4bf0be6cc8a226253d70',2,'ctrl-b','all',5.33333333333333325931e-01,100);
INSERT INTO "evaluations" VALUES(13,'c0172581bcbf4bf0be6cc8a226253d70',3,'syn','all',5.00000000000000111022e-01,100);
INSERT INTO "evaluations" VALUES(14,'c0172581bcbf4bf0be6cc8a226253d70',3,'syn','session:1',4.46666666666666656304e-01,20);
INSERT INTO "evaluations" VALUES(15,'c0172581bcbf4bf0be6cc8a226253d70',3,'syn','session:2',4.73333333333333383663e-01,20);
INSERT INTO "evaluations" VALUES(16,'c0172581bcbf4bf0be6cc8a226253d70',3,'syn','session:3',0.5,20);
INSERT INTO "evaluations" VALUES(17,'c0172581bcbf4bf0be6cc8a226253d70',3,'ctrl-a','all',7.00000000000000066613e-01,100);
INSERT INTO "evaluations" VALUES(18,'c0172581bcbf4bf0be6cc8a226253d70',3,'ctrl-b','all',4.99999999999999944488e-01,100);
INSERT INTO "evaluations" VALUES(19,'17c04235ebf149718180679d6499d1b3',0,'syn','all',0.11,100);
INSERT INTO "evaluations" VALUES(20,'17c04235ebf149718180679d6499d1b3',0,'ctrl-a','all',0.8,100);
INSERT INTO "evaluations" VALUES(21,'17c04235ebf149718180679d6499d1b3',0,'ctrl-b','all',0.6,100);
INSERT INTO "evaluations" VALUES(22,'17c04235ebf149718180679d6499d1b3',1,'syn','all',2.43333333333333345915e-01,100);
INSERT INTO "evaluations" VALUES(23,'17c04235ebf149718180679d6499d1b3',1,'syn','session:1',0.5,20);
INSERT INTO "evaluations" VALUES(24,'17c04235ebf149718180679d6499d1b3',1,'ctrl-a','all',7.66666666666666718477e-01,100);
INSERT INTO "evaluations" VALUES(25,'17c04235ebf149718180679d6499d1b3',1,'ctrl-b','all',5.66666666666666651863e-01,100);
INSERT INTO "evaluations" VALUES(26,'17c04235ebf149718180679d6499d1b3',2,'syn','all',3.76666666666666705154e-01,100);
INSERT INTO "evaluations" VALUES(27,'17c04235ebf149718180679d6499d1b3',2,'syn','session:1',4.73333333333333383663e-01,20);
INSERT INTO "evaluations" VALUES(28,'17c04235ebf149718180679d6499d1b3',2,'syn','session:2',0.5,20);
INSERT INTO "evaluations" VALUES(29,'17c04235ebf149718180679d6499d1b3',2,'ctrl-a','all',7.33333333333333392545e-01,100);
INSERT INTO "evaluations" VALUES(30,'17c04235ebf149718180679d6499d1b3',2,'ctrl-b','all',5.33333333333333325931e-01,100);
INSERT INTO "evaluations" VALUES(31,'17c04235ebf149718180679d6499d1b3',3,'syn','all',5.10000000000000119904e-01,100);
INSERT INTO "evaluations" VALUES(32,'17c04235ebf149718180679d6499d1b3',3,'syn','session:1',4.46666666666666656304e-01,20);
INSERT INTO "evaluations" VALUES(33,'17c04235ebf149718180679d6499d1b3',3,'syn','session:2',4.73333333333333383663e-01,20);
INSERT INTO "evaluations" VALUES(34,'17c04235ebf149718180679d6499d1b3',3,'syn','session:3',0.5,20);
INSERT INTO "evaluations" VALUES(35,'17c04235ebf149718180679d6499d1b3',3,'ctrl-a','all',7.00000000000000066613e-01,100);
INSERT INTO "evaluations" VALUES(36,'17c04235ebf149718180679d6499d1b3',3,'ctrl-b','all',4.99999999999999944488e-01,100);
INSERT INTO "evaluations" VALUES(37,'758a533d004247628167180b79902ed4',0,'syn','all',1.20000000000000009436e-01,100);
INSERT INTO "evaluations" VALUES(38,'758a533d004247628167180b79902ed4',0,'ctrl-a','all',0.8,100);
INSERT INTO "evaluations" VALUES(39,'758a533d004247628167180b79902ed4',0,'ctrl-b','all',0.6,100);
INSERT INTO "evaluations" VALUES(40,'758a533d004247628167180b79902ed4',1,'syn','all',2.53333333333333354797e-01,100);
INSERT INTO "evaluations" VALUES(41,'758a533d004247628167180b79902ed4',1,'syn','session:1',0.5,20);
INSERT INTO "evaluations" VALUES(42,'758a533d004247628167180b79902ed4',1,'ctrl-a','all',7.66666666666666718477e-01,100);
INSERT INTO "evaluations" VALUES(43,'758a533d004247628167180b79902ed4',1,'ctrl-b','all',5.66666666666666651863e-01,100);
INSERT INTO "evaluations" VALUES(44,'758a533d004247628167180b79902ed4',2,'syn','all',3.86666666666666714036e-01,100);
INSERT INTO "evaluations" VALUES(45,'758a533d004247628167180b79902ed4',2,'syn','session:1',4.73333333333333383663e-01,20);
INSERT INTO "evaluations" VALUES(46,'758a533d004247628167180b79902ed4',2,'syn','session:2',0.5,20);
INSERT INTO "evaluations" VALUES(47,'758a533d004247628167180b79902ed4',2,'ctrl-a','all',7.33333333333333392545e-01,100);
INSERT INTO "evaluations" VALUES(48,'758a533d004247628167180b79902ed4',2,'ctrl-b','all',5.33333333333333325931e-01,100);
INSERT INTO "evaluations" VALUES(49,'758a533d004247628167180b79902ed4',3,'syn','all',5.20000000000000128785e-01,100);
INSERT INTO "evaluations" VALUES(50,'758a533d004247628167180b79902ed4',3,'syn','session:1',4.46666666666666656304e-01,20);
INSERT INTO "evaluations" VALUES(51,'758a533d004247628167180b79902ed4',3,'syn','session:2',4.73333333333333383663e-01,20);
INSERT INTO "evaluations" VALUES(52,'758a533d004247628167180b79902ed4',3,'syn','session:3',0.5,20);
INSERT INTO "evaluations" VALUES(53,'758a533d004247628167180b79902ed4',3,'ctrl-a','all',7.00000000000000066613e-01,100);
INSERT INTO "evaluations" VALUES(54,'758a533d004247628167180b79902ed4',3,'ctrl-b','all',4.99999999999999944488e-01,100);
INSERT INTO "evaluations" VALUES(55,'57a21cfd42ed4fc4964d59ad8b8d296f',0,'syn','all',0.1,100);
INSERT INTO "evaluations" VALUES(56,'57a21cfd42ed4fc4964d59ad8b8d296f',0,'ctrl-a','all',0.8,100);
INSERT INTO "evaluations" VALUES(57,'57a21cfd42ed4fc4964d59ad8b8d296f',0,'ctrl-b','all',0.6,100);
INSERT INTO "evaluations" VALUES(58,'57a21cfd42ed4fc4964d59ad8b8d296f',1,'syn','all',1.6666666666666668517e-01,100);
INSERT INTO "evaluations" VALUES(59,'57a21cfd42ed4fc4964d59ad8b8d296f',1,'syn','session:1',3.00000000000000044408e-01,20);
INSERT INTO "evaluations" VALUES(60,'57a21cfd42ed4fc4964d59ad8b8d296f',1,'ctrl-a','all',7.83333333333333325931e-01,100);
INSERT INTO "evaluations" VALUES(61,'57a21cfd42ed4fc4964d59ad8b8d296f',1,'ctrl-b','all',5.83333333333333259318e-01,100);
INSERT INTO "evaluations" VALUES(62,'57a21cfd42ed4fc4964d59ad8b8d296f',2,'syn','all',2.33333333333333337034e-01,100);
INSERT INTO "evaluations" VALUES(63,'57a21cfd42ed4fc4964d59ad8b8d296f',2,'syn','session:1',2.86666666666666680729e-01,20);
INSERT INTO "evaluations" VALUES(64,'57a21cfd42ed4fc4964d59ad8b8d296f',2,'syn','session:2',3.00000000000000044408e-01,20);
INSERT INTO "evaluations" VALUES(65,'57a21cfd42ed4fc4964d59ad8b8d296f',2,'ctrl-a','all',7.66666666666666718477e-01,100);
INSERT INTO "evaluations" VALUES(66,'57a21cfd42ed4fc4964d59ad8b8d296f',2,'ctrl-b','all',5.66666666666666651863e-01,100);
INSERT INTO "evaluations" VALUES(67,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'syn','all',3.00000000000000044408e-01,100);
INSERT INTO "evaluations" VALUES(68,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'syn','session:1',2.7333333333333331705e-01,20);
INSERT INTO "evaluations" VALUES(69,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'syn','session:2',2.86666666666666680729e-01,20);
INSERT INTO "evaluations" VALUES(70,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'syn','session:3',3.00000000000000044408e-01,20);
INSERT INTO "evaluations" VALUES(71,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'ctrl-a','all',0.75,100);
INSERT INTO "evaluations" VALUES(72,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'ctrl-b','all',5.49999999999999933386e-01,100);
CREATE TABLE runs (
	id VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	strategy VARCHAR(200) NOT NULL, 
	strategy_config JSON NOT NULL, 
	strategy_config_hash VARCHAR(64) NOT NULL, 
	scenario VARCHAR(200) NOT NULL, 
	scenario_manifest_hash VARCHAR(64), 
	model_arch VARCHAR(200) NOT NULL, 
	model_pretrained VARCHAR(200), 
	model_checkpoint_sha256 VARCHAR(64), 
	seed INTEGER NOT NULL, 
	config JSON NOT NULL, 
	config_hash VARCHAR(64) NOT NULL, 
	training_config JSON NOT NULL, 
	git_sha VARCHAR(64), 
	git_dirty BOOLEAN, 
	packages JSON, 
	hardware JSON, 
	trainable_params INTEGER, 
	total_params INTEGER, 
	total_time_s FLOAT, 
	pid INTEGER NOT NULL, 
	hostname VARCHAR(255) NOT NULL, 
	summary JSON, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES('c0172581bcbf4bf0be6cc8a226253d70','completed',NULL,'2026-11-30 17:42:12.542447','2026-11-30 17:42:12.542447','2026-11-30 17:42:12.559786','fft','{"rank": 8}','fd6fa1f57597df64','syn-4shot','synthetic','ViT-B-16','openai',NULL,0,'{"strategy": {"name": "fft", "rank": 8}, "scenario": "syn-4shot", "seed": 0, "training": {"lr": 0.0001, "epochs": 2}, "dataset_manifest_hashes": {"syn": "synthetic"}}','fft-0.0001-0','{"lr": 0.0001, "epochs": 2}','0000000000000000000000000000000000000000',0,'{"clbench": "synthetic"}','{"cpu": "synthetic"}',10000,1000000,10.0,12333,'vm','{"target": "syn", "sessions": 3, "final_accuracy": 0.5000000000000001, "zero_shot_accuracy": 0.1, "target_gain": 0.40000000000000013, "average_accuracy": 0.47333333333333333, "average_incremental_accuracy": 0.3666666666666667, "transfer_by_session": [null, null, null], "transfer": null, "plasticity": null, "forgetting": 0.03999999999999998, "bwt": -0.03999999999999998, "controls": {"ctrl-a": {"final": 0.7000000000000001, "zero_shot": 0.8, "change": -0.09999999999999998}, "ctrl-b": {"final": 0.49999999999999994, "zero_shot": 0.6, "change": -0.10000000000000003}}, "balanced": 0.30000000000000016, "trainable_percent": 1.0}');
INSERT INTO "runs" VALUES('17c04235ebf149718180679d6499d1b3','completed',NULL,'2026-11-30 17:42:12.561273','2026-11-30 17:42:12.561273','2026-11-30 17:42:12.571397','fft','{"rank": 8}','fd6fa1f57597df64','syn-4shot','synthetic','ViT-B-16','openai',NULL,1,'{"strategy": {"name": "fft", "rank": 8}, "scenario": "syn-4shot", "seed": 1, "training": {"lr": 0.0001, "epochs": 2}, "dataset_manifest_hashes": {"syn": "synthetic"}}','fft-0.0001-1','{"lr": 0.0001, "epochs": 2}','0000000000000000000000000000000000000000',0,'{"clbench": "synthetic"}','{"cpu": "synthetic"}',10000,1000000,10.0,12333,'vm','{"target": "syn", "sessions": 3, "final_accuracy": 0.5100000000000001, "zero_shot_accuracy": 0.11, "target_gain": 0.40000000000000013, "average_accuracy": 0.47333333333333333, "average_incremental_accuracy": 0.3766666666666667, "transfer_by_session": [null, null, null], "transfer": null, "plasticity": null, "forgetting": 0.03999999999999998, "bwt": -0.03999999999999998, "controls": {"ctrl-a": {"final": 0.7000000000000001, "zero_shot": 0.8, "change": -0.09999999999999998}, "ctrl-b": {"final": 0.49999999999999994, "zero_shot": 0.6, "change": -0.10000000000000003}}, "balanced": 0.30000000000000016, "trainable_percent": 1.0}');
INSERT INTO "runs" VALUES('758a533d004247628167180b79902ed4','completed',NULL,'2026-11-30 17:42:12.572591','2026-11-30 17:42:12.572591','2026-11-30 17:42:12.582755','fft','{"rank": 8}','fd6fa1f57597df64','syn-4shot','synthetic','ViT-B-16','openai',NULL,2,'{"strategy": {"name": "fft", "rank": 8}, "scenario": "syn-4shot", "seed": 2, "training": {"lr": 0.0001, "epochs": 2}, "dataset_manifest_hashes": {"syn": "synthetic"}}','fft-0.0001-2','{"lr": 0.0001, "epochs": 2}','0000000000000000000000000000000000000000',0,'{"clbench": "synthetic"}','{"cpu": "synthetic"}',10000,1000000,10.0,12333,'vm','{"target": "syn", "sessions": 3, "final_accuracy": 0.5200000000000001, "zero_shot_accuracy": 0.12000000000000001, "target_gain": 0.40000000000000013, "average_accuracy": 0.47333333333333333, "average_incremental_accuracy": 0.3866666666666667, "transfer_by_session": [null, null, null], "transfer": null, "plasticity": null, "forgetting": 0.03999999999999998, "bwt": -0.03999999999999998, "controls": {"ctrl-a": {"final": 0.7000000000000001, "zero_shot": 0.8, "change": -0.09999999999999998}, "ctrl-b": {"final": 0.49999999999999994, "zero_shot": 0.6, "change": -0.10000000000000003}}, "balanced": 0.30000000000000016, "trainable_percent": 1.0}');
INSERT INTO "runs" VALUES('57a21cfd42ed4fc4964d59ad8b8d296f','failed','RuntimeError: synthetic failure','2026-11-30 17:42:12.583913','2026-11-30 17:42:12.583913','2026-11-30 17:42:12.593681','ln','{"rank": 8}','fd6fa1f57597df64','syn-4shot','synthetic','ViT-B-16','openai',NULL,0,'{"strategy": {"name": "ln", "rank": 8}, "scenario": "syn-4shot", "seed": 0, "training": {"lr": 0.0001, "epochs": 2}, "dataset_manifest_hashes": {"syn": "synthetic"}}','ln-0.0001-0','{"lr": 0.0001, "epochs": 2}','0000000000000000000000000000000000000000',0,'{"clbench": "synthetic"}','{"cpu": "synthetic"}',10000,1000000,NULL,12333,'vm',NULL);
CREATE TABLE schema_info (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR(255) NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "schema_info" VALUES('schema_version','1');
CREATE TABLE sessions (
	id INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	"index" INTEGER NOT NULL, 
	classes JSON NOT NULL, 
	sample_ids JSON NOT NULL, 
	train_time_s FLOAT NOT NULL, 
	peak_memory_mb FLOAT, 
	final_loss FLOAT, 
	trainable_params INTEGER, 
	facts JSON NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_sessions_run_index UNIQUE (run_id, "index"), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "sessions" VALUES(1,'c0172581bcbf4bf0be6cc8a226253d70',1,'["class 1.0", "class 1.1"]','["syn/0/1/0", "syn/0/1/1", "syn/0/1/2", "syn/0/1/3", "syn/0/1/4", "syn/0/1/5", "syn/0/1/6", "syn/0/1/7"]',2.0,100.0,NULL,10000,'{"active_blocks": 1}');
INSERT INTO "sessions" VALUES(2,'c0172581bcbf4bf0be6cc8a226253d70',2,'["class 2.0", "class 2.1"]','["syn/0/2/0", "syn/0/2/1", "syn/0/2/2", "syn/0/2/3", "syn/0/2/4", "syn/0/2/5", "syn/0/2/6", "syn/0/2/7"]',3.0,100.0,NULL,10000,'{"active_blocks": 2}');
INSERT INTO "sessions" VALUES(3,'c0172581bcbf4bf0be6cc8a226253d70',3,'["class 3.0", "class 3.1"]','["syn/0/3/0", "syn/0/3/1", "syn/0/3/2", "syn/0/3/3", "syn/0/3/4", "syn/0/3/5", "syn/0/3/6", "syn/0/3/7"]',4.0,100.0,NULL,10000,'{"active_blocks": 3}');
INSERT INTO "sessions" VALUES(4,'17c04235ebf149718180679d6499d1b3',1,'["class 1.0", "class 1.1"]','["syn/1/1/0", "syn/1/1/1", "syn/1/1/2", "syn/1/1/3", "syn/1/1/4", "syn/1/1/5", "syn/1/1/6", "syn/1/1/7"]',2.0,100.0,NULL,10000,'{"active_blocks": 1}');
INSERT INTO "sessions" VALUES(5,'17c04235ebf149718180679d6499d1b3',2,'["class 2.0", "class 2.1"]','["syn/1/2/0", "syn/1/2/1", "syn/1/2/2", "syn/1/2/3", "syn/1/2/4", "syn/1/2/5", "syn/1/2/6", "syn/1/2/7"]',3.0,100.0,NULL,10000,'{"active_blocks": 2}');
INSERT INTO "sessions" VALUES(6,'17c04235ebf149718180679d6499d1b3',3,'["class 3.0", "class 3.1"]','["syn/1/3/0", "syn/1/3/1", "syn/1/3/2", "syn/1/3/3", "syn/1/3/4", "syn/1/3/5", "syn/1/3/6", "syn/1/3/7"]',4.0,100.0,NULL,10000,'{"active_blocks": 3}');
INSERT INTO "sessions" VALUES(7,'758a533d004247628167180b79902ed4',1,'["class 1.0", "class 1.1"]','["syn/2/1/0", "syn/2/1/1", "syn/2/1/2", "syn/2/1/3", "syn/2/1/4", "syn/2/1/5", "syn/2/1/6", "syn/2/1/7"]',2.0,100.0,NULL,10000,'{"active_blocks": 1}');
INSERT INTO "sessions" VALUES(8,'758a533d004247628167180b79902ed4',2,'["class 2.0", "class 2.1"]','["syn/2/2/0", "syn/2/2/1", "syn/2/2/2", "syn/2/2/3", "syn/2/2/4", "syn/2/2/5", "syn/2/2/6", "syn/2/2/7"]',3.0,100.0,NULL,10000,'{"active_blocks": 2}');
INSERT INTO "sessions" VALUES(9,'758a533d004247628167180b79902ed4',3,'["class 3.0", "class 3.1"]','["syn/2/3/0", "syn/2/3/1", "syn/2/3/2", "syn/2/3/3", "syn/2/3/4", "syn/2/3/5", "syn/2/3/6", "syn/2/3/7"]',4.0,100.0,NULL,10000,'{"active_blocks": 3}');
INSERT INTO "sessions" VALUES(10,'57a21cfd42ed4fc4964d59ad8b8d296f',1,'["class 1.0", "class 1.1"]','["syn/0/1/0", "syn/0/1/1", "syn/0/1/2", "syn/0/1/3", "syn/0/1/4", "syn/0/1/5", "syn/0/1/6", "syn/0/1/7"]',2.0,100.0,NULL,10000,'{"active_blocks": 1}');
INSERT INTO "sessions" VALUES(11,'57a21cfd42ed4fc4964d59ad8b8d296f',2,'["class 2.0", "class 2.1"]','["syn/0/2/0", "syn/0/2/1", "syn/0/2/2", "syn/0/2/3", "syn/0/2/4", "syn/0/2/5", "syn/0/2/6", "syn/0/2/7"]',3.0,100.0,NULL,10000,'{"active_blocks": 2}');
INSERT INTO "sessions" VALUES(12,'57a21cfd42ed4fc4964d59ad8b8d296f',3,'["class 3.0", "class 3.1"]','["syn/0/3/0", "syn/0/3/1", "syn/0/3/2", "syn/0/3/3", "syn/0/3/4", "syn/0/3/5", "syn/0/3/6", "syn/0/3/7"]',4.0,100.0,NULL,10000,'{"active_blocks": 3}');
CREATE INDEX ix_runs_status ON runs (status);
CREATE INDEX ix_runs_strategy ON runs (strategy);
CREATE INDEX ix_runs_created_at ON runs (created_at);
CREATE INDEX ix_runs_scenario ON runs (scenario);
CREATE INDEX ix_sessions_run_id ON sessions (run_id);
CREATE INDEX ix_evaluations_run_id ON evaluations (run_id);
COMMIT;
